"""``python -m trustloop.app``: the clinician's web app on ``TRUSTLOOP_APP_URL``."""

from trustloop.app.main import main

if __name__ == "__main__":
    main()
