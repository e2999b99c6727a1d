"""Twilio Programmable Messaging: send SMS, read status callbacks and inbound SMS.

Send: POST {api}/2010-04-01/Accounts/{AccountSid}/Messages.json, form-encoded
To / From (or MessagingServiceSid) / Body / StatusCallback, HTTP basic auth
(AccountSid, AuthToken). Errors are JSON `{code, message, more_info, status}`.

Webhooks (status callbacks and inbound messages) are form POSTs signed with
`X-Twilio-Signature` = base64(HMAC-SHA1(auth token, full URL + each POST parameter's
name and value, sorted by name)). Status callbacks carry no time of the event except
`RawDlrDoneDate` (YYMMDDhhmm, UTC) on final statuses; otherwise the time of receipt.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from urllib.parse import parse_qsl

import requests

from engine.clock import utcnow
from engine.delivery.ports import DeliveryEvent, DeliveryStatus, InboundMessage, OutgoingMessage, Receipt, WebhookBatch
from engine.delivery.sms_segments import sms_segments
from engine.errors import AuthError, PermanentSendError, TransientSendError
from workers.channels.http import (
    ProviderHttp,
    header,
    json_body,
    raise_for_transport,
    retry_after,
    text_with_links,
)

# Send errors meaning the number itself cannot receive SMS from us: suppress it.
DEAD_NUMBER_CODES = frozenset({
    21211,  # invalid 'To' phone number
    21217,  # phone number does not appear to be valid
    21401,  # invalid phone number
    21610,  # the recipient replied STOP: unsubscribed from this sender
    21612,  # the 'To' number is not reachable via SMS
    21614,  # 'To' is not a mobile number
})
RATE_LIMIT_CODES = frozenset({20429, 14107})  # too many requests; SMS send rate limit exceeded
# Delivery errors (status callbacks) meaning the number is gone.
DEAD_DELIVERY_CODES = frozenset({
    "30005",  # unknown destination handset: the number does not exist
    "30006",  # landline or unreachable carrier
    "21610",  # unsubscribed recipient
    "21614",  # not a mobile number
})
STATUSES: dict[str, DeliveryStatus] = {
    "sent": "sent", "delivered": "delivered", "undelivered": "failed", "failed": "failed",
    "canceled": "failed", "read": "opened",
}
# queued / accepted / scheduled / sending are steps before "sent": nothing to record.


class TwilioSms:
    channel = "sms"

    def __init__(self, *, account_sid: str, auth_token: str, sender: str = "",
                 api_url: str = "https://api.twilio.com", timeout: float = 15.0):
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.sender = sender
        self.messages_url = f"{api_url.rstrip('/')}/2010-04-01/Accounts/{account_sid}/Messages.json"
        self.http = ProviderHttp("twilio", timeout=timeout)

    def send(self, message: OutgoingMessage, *, on_handover: Callable[[], None] | None = None) -> Receipt:
        text = text_with_links(message.text, message.buttons)
        form = {"To": message.to, "Body": text}
        sender = message.sender if message.sender and "@" not in message.sender else self.sender
        # A Messaging Service picks the number itself (and handles STOP lists per service).
        form["MessagingServiceSid" if sender.startswith("MG") else "From"] = sender
        if message.status_callback:
            form["StatusCallback"] = message.status_callback
        response = self.http.request("POST", self.messages_url, message=message, on_handover=on_handover, data=form,
                                     auth=(self.account_sid, self.auth_token))
        body = json_body(response)
        if response.status_code in (200, 201) and body.get("sid"):
            meta = {**sms_segments(text).as_meta(), "status": body.get("status")}
            return Receipt(provider_id=str(body["sid"]), meta=meta)
        raise _send_error(response)

    def read_webhook(self, *, url: str, headers: Mapping[str, str], body: bytes) -> WebhookBatch:
        params = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        if not self.auth_token or not hmac.compare_digest(
            header(headers, "X-Twilio-Signature").encode(), twilio_signature(self.auth_token, url, params).encode()
        ):
            raise AuthError("bad or missing X-Twilio-Signature")
        form = dict(params)
        sid = form.get("MessageSid") or form.get("SmsSid") or ""
        status = form.get("MessageStatus") or ""
        if "Body" in form and status in ("", "received", "receiving"):
            return WebhookBatch(inbound=[InboundMessage(
                channel="sms", sender=form.get("From", ""), text=form["Body"], receipt_key=sid, occurred_at=utcnow())])
        mapped = STATUSES.get(status)
        if mapped is None or not sid:
            return WebhookBatch()
        error = form.get("ErrorCode", "")
        return WebhookBatch(deliveries=[DeliveryEvent(
            channel="sms", status=mapped, receipt_key=f"{sid}:{status}", occurred_at=_done_date(form),
            provider_id=sid, detail=f"Twilio error {error}" if error else "",
            address_dead=mapped == "failed" and error in DEAD_DELIVERY_CODES, address=form.get("To") or None,
        )])

    def close(self) -> None:
        self.http.close()


def twilio_signature(auth_token: str, url: str, params: list[tuple[str, str]]) -> str:
    data = url + "".join(name + value for name, value in sorted(params))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _send_error(response: requests.Response) -> Exception:
    body = json_body(response)
    code = body.get("code")
    detail = f"Twilio {code}: {body.get('message', '')}" if code else ""
    if code in RATE_LIMIT_CODES:  # some rate limits come back as 400 with a code
        return TransientSendError(f"twilio: rate limited: {detail}", retry_after=retry_after(response))
    raise_for_transport("twilio", response, detail)
    if code in DEAD_NUMBER_CODES:
        return PermanentSendError(detail, address_dead=True)
    if response.status_code in (200, 201):
        return TransientSendError("twilio: accepted without a message sid")
    return PermanentSendError(detail or f"twilio: HTTP {response.status_code}")


def _done_date(form: dict[str, str]) -> datetime:
    raw = form.get("RawDlrDoneDate", "")
    try:
        return datetime.strptime(raw, "%y%m%d%H%M").replace(tzinfo=UTC)
    except ValueError:
        return utcnow()
