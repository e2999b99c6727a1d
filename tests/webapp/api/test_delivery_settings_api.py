"""GET/PUT /api/v1/settings/delivery: quiet hours, frequency caps and attribution windows per workspace."""

from __future__ import annotations

from datetime import time

from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from engine.delivery.settings import frequency_caps_for, quiet_hours_for
from engine.store.models import Workspace
from tests.conftest import Shop
from tests.webapp.conftest import auth_headers, send_signed

URL = "/api/v1/settings/delivery"
NIGHT = {"start": "21:00", "end": "09:00"}


def get(client: FlaskClient, shop: Shop) -> dict:
    response = client.get(URL, headers=auth_headers(shop.credentials))
    assert response.status_code == 200
    return response.get_json()


def put(client: FlaskClient, shop: Shop, body: object):  # type: ignore[no-untyped-def]
    return send_signed(client, "PUT", URL, shop.credentials, body)


def stored(sessions: sessionmaker[Session], shop: Shop) -> dict:
    with sessions() as session:
        return session.get_one(Workspace, shop.id).settings


def test_a_new_workspace_gets_the_defaults(client, shop) -> None:
    """No SMS or messengers 21:00-09:00, no email quiet hours, no caps, 5-day click / 1-day open windows,
    held marketing messages dropped after a day,
    in-doubt transactional messages resent and marketing ones not."""
    assert get(client, shop) == {
        "quiet_hours": {"email": None, "sms": NIGHT, "telegram": NIGHT, "whatsapp": NIGHT, "viber": NIGHT},
        "frequency_caps": {},
        "attribution": {"click_days": 5, "open_days": 1},
        "held_messages": {"expire_after_hours": 24},
        "in_doubt": {"transactional": "resend", "marketing": "skip"},
    }


def test_put_stores_the_sections_given_and_answers_what_now_applies(client, shop, sessions) -> None:
    """Channels left out of quiet_hours keep their default; null switches a channel's quiet hours off."""
    response = put(client, shop, {
        "quiet_hours": {"email": {"start": "22:30", "end": "7:00"}, "sms": None},
        "frequency_caps": {"email": {"max": 3, "days": 7}, "all": {"max": 5, "days": 7}},
    })
    assert response.status_code == 200
    expected = {
        "quiet_hours": {"email": {"start": "22:30", "end": "07:00"}, "sms": None,
                        "telegram": NIGHT, "whatsapp": NIGHT, "viber": NIGHT},
        "frequency_caps": {"email": {"max": 3, "days": 7}, "all": {"max": 5, "days": 7}},
        "attribution": {"click_days": 5, "open_days": 1},
        "held_messages": {"expire_after_hours": 24},
        "in_doubt": {"transactional": "resend", "marketing": "skip"},
    }
    assert response.get_json() == expected
    assert get(client, shop) == expected
    settings = stored(sessions, shop)
    assert settings["quiet_hours"] == {"email": {"start": "22:30", "end": "07:00"}, "sms": None}
    assert quiet_hours_for(settings)["email"] == (time(22, 30), time(7, 0))
    assert frequency_caps_for(settings) == {"email": (3, 7), "all": (5, 7)}


def test_sections_left_out_are_kept_and_null_restores_the_defaults(client, shop) -> None:
    """A PUT of attribution leaves the caps alone; frequency_caps: null removes them."""
    put(client, shop, {"frequency_caps": {"sms": {"max": 1, "days": 1}}})
    assert put(client, shop, {"attribution": {"click_days": 7}}).get_json()["frequency_caps"] == {
        "sms": {"max": 1, "days": 1}}
    body = put(client, shop, {"frequency_caps": None}).get_json()
    assert body["frequency_caps"] == {} and body["attribution"] == {"click_days": 7, "open_days": 1}


def test_get_round_trips_through_put(client, shop) -> None:
    """What GET answers is a valid PUT body that changes nothing."""
    put(client, shop, {"quiet_hours": {"viber": {"start": "20:00", "end": "08:00"}},
                       "frequency_caps": {"all": {"max": 4, "days": 7}}})
    before = get(client, shop)
    response = put(client, shop, before)
    assert response.status_code == 200 and response.get_json() == before


def test_other_workspace_settings_survive_a_put(client, shop, sessions) -> None:
    """Only the delivery keys change; e.g. loyalty tiers stored alongside are untouched."""
    with sessions.begin() as session:
        session.get_one(Workspace, shop.id).settings = {"loyalty_tiers": [{"name": "novice", "min_spent": "0"}]}
    put(client, shop, {"attribution": {"open_days": 0}})
    settings = stored(sessions, shop)
    assert settings["loyalty_tiers"] == [{"name": "novice", "min_spent": "0"}]
    assert settings["attribution"] == {"click_days": 5, "open_days": 0}


def test_invalid_settings_are_422_with_the_path_of_each_bad_field(client, shop, sessions) -> None:
    """Bad times, unknown channels, empty windows and out-of-range numbers are named; nothing is stored."""
    response = put(client, shop, {
        "quiet_hours": {"sms": {"start": "25:00", "end": "09:00"}, "fax": None,
                        "viber": {"start": "21:00", "end": "21:00"}},
        "frequency_caps": {"email": {"max": 0, "days": 7}, "all": {"max": 5}},
        "attribution": {"click_days": -1},
        "send_window": {},
    })
    assert response.status_code == 422
    body = response.get_json()
    assert body["error"] == "invalid_settings"
    errors = {e["field"]: e["message"] for e in body["errors"]}
    assert errors["quiet_hours.sms.start"] == "a time of day as HH:MM, 24-hour (e.g. 21:00)"
    assert set(errors) == {"quiet_hours.sms.start", "quiet_hours.fax", "quiet_hours.viber", "frequency_caps.email.max",
                           "frequency_caps.all.days", "attribution.click_days", "send_window"}
    assert "start and end must differ" in errors["quiet_hours.viber"]
    assert stored(sessions, shop) == {}


def test_a_body_that_is_not_an_object_is_400(client, shop) -> None:
    """A list or a malformed body is refused before validation."""
    assert put(client, shop, [1, 2]).status_code == 400
    response = send_signed(client, "PUT", URL, shop.credentials, b"{nope")
    assert response.status_code == 400 and response.get_json()["error"] == "malformed_json"


def test_settings_are_per_workspace_and_need_the_api_key(client, shop, second_shop) -> None:
    """One shop's caps are not another's; no key, 401."""
    put(client, shop, {"frequency_caps": {"all": {"max": 2, "days": 1}}})
    assert get(client, second_shop)["frequency_caps"] == {}
    assert client.get(URL).status_code == 401
    assert client.put(URL, json={}).status_code == 401


def test_held_message_expiry_is_set_and_reset(client, shop, sessions) -> None:
    """6 hours is stored and answered; null restores the 24-hour default; 0 is allowed, 721 is not."""
    response = put(client, shop, {"held_messages": {"expire_after_hours": 6}})
    assert response.status_code == 200 and response.get_json()["held_messages"] == {"expire_after_hours": 6}
    assert stored(sessions, shop)["held_messages"] == {"expire_after_hours": 6}
    assert put(client, shop, {"held_messages": {"expire_after_hours": 0}}).get_json()["held_messages"] == {
        "expire_after_hours": 0}
    refused = put(client, shop, {"held_messages": {"expire_after_hours": 721}})
    assert refused.status_code == 422
    assert [e["field"] for e in refused.get_json()["errors"]] == ["held_messages.expire_after_hours"]
    assert put(client, shop, {"held_messages": None}).get_json()["held_messages"] == {"expire_after_hours": 24}

