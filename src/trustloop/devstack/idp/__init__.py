"""Local stand-in for IBM Verify: the OAuth/OIDC subset trustloop uses (dev-only).

Paths follow Verify's (``/oauth2/token``, ``/oauth2/introspect``, ``/oauth2/jwks``) so
the production client :class:`trustloop.identity.oauth.IdpClient` is what the tests
exercise. Run as ``python -m trustloop.devstack.idp``; it refuses any profile but
``local``.
"""
