"""The simulator's HTTP API: Twilio's and SendGrid's paths, auth checks, errors and faults."""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import math
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, Final
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from outreach._clock import SystemClock
from outreach._simulator._faults import Channel, Fault, Faults
from outreach._simulator._sendgrid import SendGridError, SendGridSim, sendgrid_error_body
from outreach._simulator._server import Drop
from outreach._simulator._twilio import TwilioError, TwilioSim, twilio_error_body
from outreach._simulator._world import World

_WALL_CLOCK = SystemClock()

__all__ = ["build_app"]

_ACCOUNT: Final = "/2010-04-01/Accounts/{account}"
_TWILIO_ERRORS: Final = {
    429: (20429, "Too Many Requests"),
    500: (20500, "Internal Server Error"),
    502: (20502, "Bad Gateway"),
    503: (20503, "Service Unavailable"),
    504: (20504, "Gateway Timeout"),
}
_SENDGRID_ERRORS: Final = {
    429: "too many requests",
    500: "internal server error",
    502: "bad gateway",
    503: "service unavailable",
    504: "gateway timeout",
}

Handler = Callable[[Request, bytes], Awaitable[Response]]


def _form(body: bytes) -> dict[str, list[str]]:
    form: dict[str, list[str]] = {}
    for name, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        form.setdefault(name, []).append(value)
    return form


def build_app(
    world: World,
    twilio: TwilioSim,
    sendgrid: SendGridSim,
    faults: Faults,
    requests: list[dict[str, Any]],
) -> Starlette:
    """The Starlette app behind ``sim.base_url``."""

    def _twilio_json(status: int, body: dict[str, Any], **headers: str) -> JSONResponse:
        headers.setdefault("Twilio-Request-Id", world.sid("RQ"))
        return JSONResponse(body, status_code=status, headers=headers)

    def twilio_auth(request: Request) -> Response | None:
        """401 unless HTTP Basic carries the account SID and auth token; 404 for another
        account's path."""
        expected = f"{world.account_sid}:{world.auth_token}"
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        try:
            given = base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            given = ""
        if scheme.lower() != "basic" or not hmac.compare_digest(given, expected):
            return _twilio_json(
                401,
                twilio_error_body(401, 20003, "Authenticate"),
                **{"WWW-Authenticate": 'Basic realm="Twilio API"'},
            )
        if request.path_params.get("account") != world.account_sid:
            path = request.url.path
            return _twilio_json(
                404, twilio_error_body(404, 20404, f"The requested resource {path} was not found")
            )
        return None

    def sendgrid_auth(request: Request) -> Response | None:
        header = request.headers.get("authorization")
        if not header:
            return JSONResponse(sendgrid_error_body("authorization required"), status_code=401)
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            key.strip(), world.sendgrid_api_key
        ):
            return JSONResponse(
                sendgrid_error_body(
                    "The provided authorization grant is invalid, expired, or revoked"
                ),
                status_code=401,
            )
        return None

    def fault_response(fault: Fault, channel: Channel) -> Response:
        status = fault.status or 500
        headers: dict[str, str] = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = str(math.ceil(fault.retry_after))
        if channel != "email":
            code, text = _TWILIO_ERRORS.get(status, (status, "Error"))
            return _twilio_json(status, twilio_error_body(status, code, text), **headers)
        if status == 429:
            reset = world.now().timestamp() + (fault.retry_after or 1)
            headers |= {
                "X-RateLimit-Limit": "600",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(math.ceil(reset)),
            }
        text = _SENDGRID_ERRORS.get(status, "error")
        return JSONResponse(sendgrid_error_body(text), status_code=status, headers=headers)

    def endpoint(channel: Channel, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def serve(request: Request) -> Response:
            body = await request.body()
            entry: dict[str, Any] = {
                "at": world.now(),
                "method": request.method,
                "path": request.url.path,
                "channel": channel,
                "status": None,
                "fault": None,
            }
            requests.append(entry)
            fault = faults.take(channel)
            if fault is not None:
                entry["fault"] = (
                    "drop" if fault.drop else f"HTTP {fault.status}" if fault.status else "slow"
                )
                if fault.delay:  # a slow provider is slow on the wall clock: timeouts are real
                    await _WALL_CLOCK.sleep(timedelta(seconds=fault.delay))
                if fault.drop and not fault.processed:
                    return Drop()
                if fault.status is not None:
                    response = fault_response(fault, channel)
                    entry["status"] = response.status_code
                    return response
            response = await handler(request, body)
            if fault is not None and fault.drop:
                return Drop()
            entry["status"] = response.status_code
            return response

        return serve

    async def create_message(request: Request, body: bytes) -> Response:
        if (refused := twilio_auth(request)) is not None:
            return refused
        try:
            return _twilio_json(201, twilio.create_message(_form(body)))
        except TwilioError as error:
            return _twilio_json(error.status, error.body())

    async def fetch_message(request: Request, body: bytes) -> Response:
        if (refused := twilio_auth(request)) is not None:
            return refused
        try:
            return _twilio_json(200, twilio.fetch_message(request.path_params["sid"]))
        except TwilioError as error:
            return _twilio_json(error.status, error.body())

    async def create_call(request: Request, body: bytes) -> Response:
        if (refused := twilio_auth(request)) is not None:
            return refused
        try:
            return _twilio_json(201, twilio.create_call(_form(body)))
        except TwilioError as error:
            return _twilio_json(error.status, error.body())

    async def call(request: Request, body: bytes) -> Response:
        if (refused := twilio_auth(request)) is not None:
            return refused
        sid = request.path_params["sid"]
        try:
            if request.method == "POST":
                return _twilio_json(200, twilio.update_call(sid, _form(body)))
            return _twilio_json(200, twilio.fetch_call(sid))
        except TwilioError as error:
            return _twilio_json(error.status, error.body())

    async def mail_send(request: Request, body: bytes) -> Response:
        if (refused := sendgrid_auth(request)) is not None:
            return refused
        try:
            payload = json.loads(body)
        except ValueError:
            return JSONResponse(sendgrid_error_body("Bad Request"), status_code=400)
        try:
            message_id = sendgrid.mail_send(payload)
        except SendGridError as error:
            return JSONResponse(error.body(), status_code=error.status)
        return Response(status_code=202, headers={"X-Message-Id": message_id})

    async def not_found(request: Request) -> Response:
        path = request.url.path
        if path.startswith("/v3/"):
            return JSONResponse(sendgrid_error_body("not found"), status_code=404)
        message = f"The requested resource {path} was not found"
        return _twilio_json(404, twilio_error_body(404, 20404, message))

    routes = [
        Route(f"{_ACCOUNT}/Messages.json", endpoint("sms", create_message), methods=["POST"]),
        Route(f"{_ACCOUNT}/Messages/{{sid}}.json", endpoint("sms", fetch_message), methods=["GET"]),
        Route(f"{_ACCOUNT}/Calls.json", endpoint("voice", create_call), methods=["POST"]),
        Route(f"{_ACCOUNT}/Calls/{{sid}}.json", endpoint("voice", call), methods=["GET", "POST"]),
        Route("/v3/mail/send", endpoint("email", mail_send), methods=["POST"]),
        Route(
            "/{path:path}",
            not_found,
            methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        ),
    ]
    return Starlette(routes=routes)
