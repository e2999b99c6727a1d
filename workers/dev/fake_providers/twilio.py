"""Fake Twilio Messages API: POST /2010-04-01/Accounts/{AccountSid}/Messages.json.

Basic auth (AccountSid, AuthToken); form-encoded To, From or MessagingServiceSid, Body,
StatusCallback. Errors are Twilio's JSON `{code, message, more_info, status}`. Twilio's
own magic test numbers behave as in its test credentials: +15005550001 is invalid
(21211), +15005550002 unroutable (21612), +15005550003 lacks international permission
(21408), +15005550004 replied STOP (21610), +15005550009 is not a mobile (21614).
Receipts ("sent", then "delivered") go to the StatusCallback URL, signed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from email.utils import format_datetime
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from engine.delivery.sms_segments import sms_segments
from workers.dev.fake_providers.answers import json_response
from workers.dev.fake_providers.state import Fault

if TYPE_CHECKING:
    from workers.dev.fake_providers.server import FakeProviders

PROVIDER = "twilio"
E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
MAGIC_NUMBERS = {
    "+15005550001": (21211, "The 'To' number +15005550001 is not a valid phone number."),
    "+15005550002": (21612, "The 'To' phone number: +15005550002, is not currently reachable via SMS."),
    "+15005550003": (21408, "Permission to send an SMS has not been enabled for the region indicated by the "
                            "'To' number: +15005550003."),
    "+15005550004": (21610, "Attempt to send to unsubscribed recipient"),
    "+15005550009": (21614, "'To' number is not a valid mobile number"),
}
INVALID_NUMBER = "+15005550001"
UNSUBSCRIBED_NUMBER = "+15005550004"


def rules() -> list[Rule]:
    return [Rule("/2010-04-01/Accounts/<sid>/Messages.json", endpoint=send_message, methods=["POST"])]


def owns(path: str) -> bool:
    return path.startswith("/2010-04-01/")


def error(code: int, message: str, status: int = 400, headers: dict[str, str] | None = None) -> Response:
    return json_response({"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}",
                          "status": status}, status=status, headers=headers)


def not_found(request: Request) -> Response:
    return error(20404, f"The requested resource {request.path} was not found", 404)


def fault_answer(fault: Fault) -> Response:
    if fault.kind == "rate_limit":
        return error(20429, "Too Many Requests", 429, headers={"Retry-After": f"{fault.retry_after:g}"})
    return error(20500, "An internal server error has occurred", fault.status)


def send_message(fake: FakeProviders, request: Request, sid: str) -> Response:
    injected = fake.injected(PROVIDER, fault_answer)
    if injected is not None:
        return injected
    creds = fake.credentials
    auth = request.authorization
    if (auth is None or auth.username != creds.twilio_account_sid or auth.password != creds.twilio_auth_token
            or sid != creds.twilio_account_sid):
        response = json_response({"code": 20003, "detail": "Your AccountSid or AuthToken was incorrect.",
                                  "message": "Authenticate", "more_info": "https://www.twilio.com/docs/errors/20003",
                                  "status": 401}, status=401)
        response.headers["WWW-Authenticate"] = 'Basic realm="Twilio API"'
        return response
    form = request.form
    to, body, sender = form.get("To", ""), form.get("Body", ""), form.get("From") or form.get("MessagingServiceSid")
    if not to:
        return error(21604, "A 'To' phone number is required.")
    if not sender:
        return error(21603, "A 'From' phone number is required.")
    if not body:
        return error(21602, "Message body is required.")
    if len(body) > 1600:
        return error(21617, "The concatenated message body exceeds the 1600 character limit.")
    if to in MAGIC_NUMBERS:
        return error(*MAGIC_NUMBERS[to])
    if not E164.match(to):
        return error(21211, f"The 'To' number {to} is not a valid phone number.")
    message_sid = "SM" + secrets.token_hex(16)
    now = fake.clock()
    fake.accept(request, provider=PROVIDER, to=to, text=body, provider_id=message_sid,
                meta={"from": sender, "status_callback": form.get("StatusCallback") or None})
    segments = sms_segments(body).segments
    callback = form.get("StatusCallback") or fake.callback_url(PROVIDER, request.headers.get("X-Rapport-Workspace"))
    if callback:
        for status in ("sent", "delivered"):
            params = {"MessageSid": message_sid, "SmsSid": message_sid, "AccountSid": sid, "From": sender,
                      "To": to, "MessageStatus": status, "SmsStatus": status, "ApiVersion": "2010-04-01"}
            if status == "delivered":
                params["RawDlrDoneDate"] = now.strftime("%y%m%d%H%M")
            fake.post_later(callback, *signed_form(creds.twilio_auth_token, callback, params))
    uri = f"/2010-04-01/Accounts/{sid}/Messages/{message_sid}"
    return json_response({
        "account_sid": sid, "api_version": "2010-04-01", "body": body, "date_created": format_datetime(now),
        "date_sent": None, "date_updated": format_datetime(now), "direction": "outbound-api", "error_code": None,
        "error_message": None, "from": form.get("From"), "messaging_service_sid": form.get("MessagingServiceSid"),
        "num_media": "0", "num_segments": str(segments), "price": None, "price_unit": "USD", "sid": message_sid,
        "status": "queued", "subresource_uris": {"media": f"{uri}/Media.json"}, "to": to, "uri": f"{uri}.json",
    }, status=201)


def signed_form(auth_token: str, url: str, params: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    """A form POST as Twilio signs it: HMAC-SHA1 over the URL and the sorted name+value pairs."""
    data = url + "".join(k + params[k] for k in sorted(params))
    signature = base64.b64encode(hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()).decode()
    return urlencode(params).encode(), {"Content-Type": "application/x-www-form-urlencoded",
                                        "X-Twilio-Signature": signature, "User-Agent": "TwilioProxy/1.1"}


def inbound_request(fake: FakeProviders, url: str, *, sender: str, text: str,
                    sender_name: str | None = None) -> tuple[bytes, dict[str, str]]:
    sid = "SM" + secrets.token_hex(16)
    params = {"ToCountry": "US", "SmsMessageSid": sid, "NumMedia": "0", "SmsSid": sid, "SmsStatus": "received",
              "Body": text, "To": fake.credentials.twilio_from, "NumSegments": "1", "MessageSid": sid,
              "AccountSid": fake.credentials.twilio_account_sid, "From": sender, "ApiVersion": "2010-04-01"}
    return signed_form(fake.credentials.twilio_auth_token, url, params)
