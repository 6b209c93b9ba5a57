"""``renewal_middleware.__all__`` lists exactly the public names of the package."""

from __future__ import annotations

import types

import renewal_middleware


def test_all_imports_are_exported() -> None:
    included_private_members = {"__version__"}
    public = sorted(
        (name for name, value in vars(renewal_middleware).items()
         if not name.startswith("_") and not isinstance(value, types.ModuleType)),
        key=str.casefold,
    )
    assert sorted(renewal_middleware.__all__, key=str.casefold) == public
    assert included_private_members <= set(vars(renewal_middleware))


def test_exported_names_resolve_and_come_from_the_package() -> None:
    assert len(set(renewal_middleware.__all__)) == len(renewal_middleware.__all__)
    for name in renewal_middleware.__all__:
        member = getattr(renewal_middleware, name)
        assert member.__module__.startswith("renewal_middleware."), name


def test_every_error_class_is_exported() -> None:
    from renewal_middleware import errors

    classes = {name for name, value in vars(errors).items()
               if isinstance(value, type) and issubclass(value, errors.RenewalError)}
    assert classes <= set(renewal_middleware.__all__)
