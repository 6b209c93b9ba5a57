"""The front channel of the code flow: the authorization request, and checks of its response.

Pure functions: :mod:`renewal_middleware.routes` calls them around its provider calls,
and the tests call them directly.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlencode

from authlib.oauth2.rfc7636 import create_s256_code_challenge

from .config import Settings
from .errors import AuthenticationError
from .oidc import ProviderMetadata
from .transaction import Kind, LoginTransaction

#: Errors of a prompt=none request that mean "the user must log in again".
SILENT_LOGIN_ERRORS = frozenset({
    "login_required", "interaction_required", "consent_required", "account_selection_required",
})


def redirect_uri(settings: Settings, kind: Kind) -> str:
    """Where the provider sends the response of a ``kind`` authorization request."""
    return settings.redirect_uri if kind == "login" else settings.silent_redirect_uri


def authorization_url(settings: Settings, endpoint: str, tx: LoginTransaction) -> str:
    """The provider's authorization endpoint with the request for ``tx`` (PKCE S256).

    A login asks with the configured prompt, or the one its link asked for
    (:func:`login_prompt`), plus its other per-login parameters; a silent
    renewal with prompt=none. A prompt=none request goes without
    ``offline_access``, which it never yields.
    """
    params = {
        "response_type": "code",
        "client_id": settings.client_id,
        "redirect_uri": redirect_uri(settings, tx.kind),
        "scope": settings.scope,
        "state": tx.state,
        "nonce": tx.nonce,
        "code_challenge": create_s256_code_challenge(tx.verifier),
        "code_challenge_method": "S256",
    }
    if tx.kind == "silent":
        prompt: str | None = "none"
    else:
        prompt = login_prompt(settings, tx.params.prompt)
        params.update(tx.params.to_query())
    if prompt == "none" and "offline_access" in settings.scopes:
        params["scope"] = " ".join(s for s in settings.scopes if s != "offline_access")
    params.pop("prompt", None)
    if prompt:
        params["prompt"] = prompt
    if settings.audience:
        params["audience"] = settings.audience
    return endpoint + ("&" if "?" in endpoint else "?") + urlencode(params)


def login_prompt(settings: Settings, asked: str | None) -> str | None:
    """The ``prompt`` of a login: the one its link asked for, else the configured one.

    With ``login_prompt="auto"`` a login asking for ``offline_access`` keeps
    ``consent`` next to the prompt it asked for (``login`` becomes ``login consent``):
    without it the provider drops ``offline_access`` (OIDC Core §11) and the
    session would lose its refresh token. ``none`` stays alone.
    """
    if asked is None:
        return settings.effective_login_prompt
    if asked == "none" or settings.login_prompt != "auto":
        return asked
    auto = settings.effective_login_prompt
    if auto is None or auto in asked.split():
        return asked
    return f"{asked} {auto}"


def authorization_code(query: Mapping[str, str], meta: ProviderMetadata) -> str:
    """The code of an authorization response, or the :class:`AuthenticationError` it means."""
    iss = query.get("iss")
    if (iss is not None and iss != meta.issuer) or (iss is None and meta.iss_parameter_supported):
        # RFC 9207: a response from another provider (mix-up) or one that lost its iss.
        raise AuthenticationError("The response names another issuer.", code="issuer_mismatch")
    if "error" in query:
        error = query["error"]
        detail = query.get("error_description")
        raise AuthenticationError(
            f"The provider answered: {error}" + (f" ({detail})" if detail else ""),
            code=error if error in SILENT_LOGIN_ERRORS else "authorization_error")
    code = query.get("code")
    if not code:
        raise AuthenticationError("The response carries no code.", code="missing_code")
    return code
