"""Login transactions: their typed record, its cookie form, and how they end."""

from __future__ import annotations

from typing import Any

import pytest

from renewal_middleware.login_parameters import LoginParameters
from renewal_middleware.transaction import (
    MAX_PENDING_LOGINS,
    LoginTransaction,
    Transactions,
)
from tests.unit.helpers import FakeClock, is_deletion, make_settings, set_cookie_pairs


@pytest.fixture
def transactions(clock: FakeClock) -> Transactions:
    return Transactions(make_settings(), clock)


def cookies_of(transactions: Transactions, *txs: LoginTransaction) -> dict[str, str]:
    return set_cookie_pairs([transactions.set_cookie(tx) for tx in txs])


def test_a_transaction_round_trips_through_its_payload() -> None:
    tx = LoginTransaction.start("silent", "/page?x=1", "iframe")
    assert LoginTransaction.from_payload(tx.to_payload()) == tx


def test_the_login_parameters_round_trip_under_short_keys(transactions: Transactions) -> None:
    params = LoginParameters(prompt="login consent", login_hint="alice@example.com",
                             ui_locales="fr", max_age=0, acr_values="gold silver")
    tx = LoginTransaction.start("login", "/x", params=params)
    payload = tx.to_payload()
    assert {k: payload[k] for k in "phlac"} == {
        "p": "login consent", "h": "alice@example.com", "l": "fr", "a": 0, "c": "gold silver"}
    assert LoginTransaction.from_payload(payload) == tx
    assert transactions.read("login", tx.state, cookies_of(transactions, tx)) == tx


def test_a_login_without_parameters_adds_no_keys() -> None:
    tx = LoginTransaction.start("login", "/")
    assert set(tx.to_payload()) == {"s", "n", "v", "r", "k", "m"}
    assert tx.params == LoginParameters()


def test_a_payload_from_before_the_parameters_still_reads() -> None:
    old = {"s": "state-1", "n": "nonce-1", "v": "v" * 64, "r": "/", "k": "login"}
    tx = LoginTransaction.from_payload(old)
    assert tx is not None and tx.mode == "redirect" and tx.params == LoginParameters()


@pytest.mark.parametrize("change", [
    {"p": 1}, {"h": ["x"]}, {"l": {}}, {"c": 2}, {"a": "0"}, {"a": -1}, {"a": True}, {"a": 1.5},
])
def test_parameters_of_the_wrong_shape_are_no_transaction(change: dict[str, Any]) -> None:
    payload: dict[str, Any] = {**LoginTransaction.start("login", "/").to_payload(), **change}
    assert LoginTransaction.from_payload(payload) is None


def test_each_transaction_has_fresh_secrets() -> None:
    first, second = LoginTransaction.start("login", "/"), LoginTransaction.start("login", "/")
    for name in ("state", "nonce", "verifier"):
        assert getattr(first, name) != getattr(second, name)
    assert len(first.verifier) >= 43  # RFC 7636: 43 to 128 characters


def test_secrets_stay_out_of_its_repr() -> None:
    tx = LoginTransaction.start("login", "/")
    assert tx.nonce not in repr(tx) and tx.verifier not in repr(tx)


@pytest.mark.parametrize("change", [
    {"k": "signup"}, {"m": "popup"}, {"s": 1}, {"n": None}, {"v": ["x"]}, {"r": {}},
])
def test_a_payload_of_the_wrong_shape_is_no_transaction(change: dict[str, Any]) -> None:
    payload: dict[str, Any] = {**LoginTransaction.start("login", "/").to_payload(), **change}
    assert LoginTransaction.from_payload(payload) is None


@pytest.mark.parametrize("payload", [None, [], "tx", {}])
def test_what_is_not_a_payload_is_no_transaction(payload: object) -> None:
    assert LoginTransaction.from_payload(payload) is None


def test_its_cookie_reads_back_on_its_own_route_only(transactions: Transactions) -> None:
    tx = LoginTransaction.start("login", "/after")
    cookies = cookies_of(transactions, tx)
    assert transactions.read("login", tx.state, cookies) == tx
    assert transactions.read("silent", tx.state, cookies) is None


def test_a_cookie_under_another_state_is_refused(transactions: Transactions) -> None:
    tx, other = LoginTransaction.start("login", "/"), LoginTransaction.start("login", "/")
    cookies = {transactions.prefix + other.state: cookies_of(transactions, tx)[
        transactions.prefix + tx.state]}
    assert transactions.read("login", other.state, cookies) is None


@pytest.mark.parametrize("state", ["", "x" * 129])
def test_an_empty_or_overlong_state_is_refused(transactions: Transactions, state: str) -> None:
    assert transactions.read("login", state, {transactions.prefix + state: "v"}) is None


def test_a_transaction_expires_with_the_login_timeout(
        transactions: Transactions, clock: FakeClock) -> None:
    tx = LoginTransaction.start("login", "/")
    cookies = cookies_of(transactions, tx)
    clock.advance(make_settings().login_timeout_seconds + 1)
    assert transactions.read("login", tx.state, cookies) is None


def test_ending_deletes_its_own_cookie_and_keeps_a_few_others(
        transactions: Transactions) -> None:
    pending = [LoginTransaction.start("login", "/") for _ in range(MAX_PENDING_LOGINS - 1)]
    tx = LoginTransaction.start("login", "/")
    ended = transactions.end(tx, cookies_of(transactions, tx, *pending))
    assert all(is_deletion(c) for c in ended)
    assert list(set_cookie_pairs(ended)) == [transactions.prefix + tx.state]


def test_ending_clears_abandoned_transactions_once_they_pile_up(
        transactions: Transactions) -> None:
    # A browser sends /silent only the cookies scoped to it: silent transactions.
    pending = [LoginTransaction.start("silent", "/") for _ in range(MAX_PENDING_LOGINS)]
    tx = LoginTransaction.start("silent", "/")
    cookies = {**cookies_of(transactions, tx, *pending), "unrelated": "1"}
    ended = transactions.end(tx, cookies)
    assert set(set_cookie_pairs(ended)) == {name for name in cookies if name != "unrelated"}
    # Deleted on the path they were set on, or the browser would keep them.
    assert all("Path=/silent" in c for c in ended)
