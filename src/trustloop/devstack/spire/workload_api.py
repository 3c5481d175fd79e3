"""The SPIFFE Workload API (gRPC) for one attested workload.

One servicer serves one socket, and the socket is the attestation: whoever can
open ``<workload>.sock`` is that workload (the supervisor hands each process its
own socket). Status codes follow the SPIFFE Workload API standard and SPIRE's
agent:

- no ``workload.spiffe.io: true`` metadata: ``INVALID_ARGUMENT`` (§5.2, "security
  header missing from request");
- ``FetchJWTSVID`` without an audience: ``INVALID_ARGUMENT``;
- a requested ``spiffe_id`` other than the socket's: ``PERMISSION_DENIED``
  ("no identity issued");
- ``ValidateJWTSVID`` of a token that does not verify: ``INVALID_ARGUMENT``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, NoReturn

import grpc
from spiffe._proto import workload_pb2, workload_pb2_grpc

from trustloop.devstack.jwtcheck import JwtInvalidError

if TYPE_CHECKING:
    from trustloop.devstack.spire.keys import JwtAuthority
    from trustloop.devstack.spire.x509ca import X509Authority

SECURITY_HEADER = ("workload.spiffe.io", "true")


class WorkloadApiServicer(workload_pb2_grpc.SpiffeWorkloadAPIServicer):
    """The Workload API as seen from one workload's socket.

    Method names are the gRPC service's (``workload.proto``), hence CamelCase.
    """

    def __init__(
        self,
        spiffe_id: str,
        jwt_authority: JwtAuthority,
        x509_authority: X509Authority,
        stopping: asyncio.Event,
    ) -> None:
        self.spiffe_id = spiffe_id
        self._jwt = jwt_authority
        self._x509 = x509_authority
        self._stopping = stopping

    async def FetchJWTSVID(
        self, request: workload_pb2.JWTSVIDRequest, context: grpc.aio.ServicerContext
    ) -> workload_pb2.JWTSVIDResponse:
        await _require_security_header(context)
        audience = list(request.audience)
        if not audience or not all(audience):
            await _abort(
                context, grpc.StatusCode.INVALID_ARGUMENT, "audience must be specified"
            )
        if request.spiffe_id and request.spiffe_id != self.spiffe_id:
            await _abort(
                context, grpc.StatusCode.PERMISSION_DENIED, "no identity issued"
            )

        token = self._jwt.mint(self.spiffe_id, audience)
        svid = workload_pb2.JWTSVID(spiffe_id=self.spiffe_id, svid=token)
        return workload_pb2.JWTSVIDResponse(svids=[svid])

    async def FetchJWTBundles(
        self, request: workload_pb2.JWTBundlesRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[workload_pb2.JWTBundlesResponse]:
        await _require_security_header(context)
        bundles = {self._jwt.trust_domain: self._jwt.jwks}
        yield workload_pb2.JWTBundlesResponse(bundles=bundles)
        # The stream stays open as SPIRE's does; keys never rotate here.
        await self._stopping.wait()

    async def ValidateJWTSVID(
        self,
        request: workload_pb2.ValidateJWTSVIDRequest,
        context: grpc.aio.ServicerContext,
    ) -> workload_pb2.ValidateJWTSVIDResponse:
        await _require_security_header(context)
        if not request.audience:
            await _abort(
                context, grpc.StatusCode.INVALID_ARGUMENT, "audience must be specified"
            )
        if not request.svid:
            await _abort(
                context, grpc.StatusCode.INVALID_ARGUMENT, "svid must be specified"
            )

        try:
            spiffe_id, claims = self._jwt.validate(request.svid, request.audience)
        except JwtInvalidError as exc:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return workload_pb2.ValidateJWTSVIDResponse(spiffe_id=spiffe_id, claims=claims)

    async def FetchX509SVID(
        self, request: workload_pb2.X509SVIDRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[workload_pb2.X509SVIDResponse]:
        await _require_security_header(context)
        while not self._stopping.is_set():
            issued = self._x509.issue(self.spiffe_id)
            svid = workload_pb2.X509SVID(
                spiffe_id=self.spiffe_id,
                x509_svid=issued.cert_der,
                x509_svid_key=issued.key_der,
                bundle=self._x509.bundle_der,
            )
            yield workload_pb2.X509SVIDResponse(svids=[svid])
            # Rotate at half the lifetime, as SPIRE's agent does.
            await _wait_or_timeout(self._stopping, issued.lifetime_s / 2)

    async def FetchX509Bundles(
        self,
        request: workload_pb2.X509BundlesRequest,
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[workload_pb2.X509BundlesResponse]:
        await _require_security_header(context)
        bundles = {self._x509.trust_domain: self._x509.bundle_der}
        yield workload_pb2.X509BundlesResponse(bundles=bundles)
        await self._stopping.wait()


async def _require_security_header(context: grpc.aio.ServicerContext) -> None:
    metadata = context.invocation_metadata() or ()
    if SECURITY_HEADER not in {(item[0], item[1]) for item in metadata}:
        await _abort(
            context,
            grpc.StatusCode.INVALID_ARGUMENT,
            "security header missing from request",
        )


async def _abort(
    context: grpc.aio.ServicerContext, code: grpc.StatusCode, details: str
) -> NoReturn:
    await context.abort(code, details)
    raise RuntimeError("unreachable: ServicerContext.abort raises")


async def _wait_or_timeout(event: asyncio.Event, timeout_s: float) -> None:
    try:
        await asyncio.wait_for(event.wait(), timeout=timeout_s)
    except TimeoutError:
        return
