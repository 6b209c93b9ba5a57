"""What the core decides for a request of the app, and the steps of the flow that follows."""

from __future__ import annotations

import dataclasses
from collections.abc import Generator
from typing import Any, Literal

from .context import Serve
from .hooks import CallHook
from .lifetimes import Expiry
from .oidc import Effect
from .renewal import Freshness
from .replies import Reply
from .session import Session
from .stores.effects import StoreEffect


@dataclasses.dataclass(frozen=True)
class NeedsRefresh:
    """Decided: renew with the refresh token (single-flight on ``key``)."""

    key: str
    freshness: Freshness


@dataclasses.dataclass(frozen=True)
class NeedsSilentLogin:
    """Decided: answer with a prompt=none round trip through the provider."""

    return_to: str
    freshness: Freshness


@dataclasses.dataclass(frozen=True)
class NeedsEnd:
    """Decided: the session is past a lifetime; end it everywhere and revoke."""

    session: Session
    #: A lifetime it passed, or ``ended``: a logout elsewhere (back-channel) named it.
    reason: Expiry | Literal["ended"]
    present: tuple[str, ...]


Decision = Serve | NeedsRefresh | NeedsSilentLogin | NeedsEnd | Reply


@dataclasses.dataclass(frozen=True)
class RunRefresh:
    """Yielded by :meth:`Flows.handle`: the driver runs :meth:`Lineages.renew` for ``session``
    through its single-flight coordinator (on ``key``) and sends the outcome back."""

    key: str
    session: Session
    now: float


#: What a request's flow yields: provider effects, plus at most one coordinated refresh.
Step = Effect | StoreEffect | CallHook | RunRefresh
#: The flow of a whole request, ending in what to do with it.
RequestFlow = Generator[Step, Any, "Serve | Reply"]
