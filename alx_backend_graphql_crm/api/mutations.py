"""Mutations as thin skins over services: permissions declared once, user mistakes in the payload."""

from dataclasses import dataclass

import graphene
from django.core.exceptions import ValidationError
from graphene.utils.str_converters import to_camel_case

from alx_backend_graphql_crm.api.permissions import check_permissions


@dataclass(frozen=True)
class InputError:
    """One mistake in a mutation's input; ``field`` is the GraphQL input name, "" for the whole input."""

    field: str
    message: str
    code: str
    index: int | None = None

    def __str__(self) -> str:
        text = f"{self.field}: {self.message}" if self.field else self.message
        return f"row {self.index}: {text}" if self.index is not None else text


class FieldError(graphene.ObjectType):
    """A mistake in the input, for programs: which field, what went wrong, a stable code."""

    field = graphene.String(required=True, description='Input field in camelCase; "" for the whole input.')
    message = graphene.String(required=True)
    code = graphene.String(required=True, description="Stable code, e.g. unique, invalid, required.")
    index = graphene.Int(description="0-based row of a list input (bulk mutations); null otherwise.")


def input_error(field: str, message: str, code: str, index: int | None = None) -> InputError:
    """An InputError whose field is named as GraphQL names it (``product_ids`` -> ``productIds``)."""
    return InputError(to_camel_case(field) if field and field != "__all__" else "", message, code, index)


def errors_from_validation(exc: ValidationError, *, index: int | None = None) -> list[InputError]:
    """Flatten a Django ValidationError (a dict by field, or a plain list) into InputErrors."""
    if hasattr(exc, "error_dict"):
        items = [(name, error) for name, errors in exc.error_dict.items() for error in errors]
    else:
        items = [("", error) for error in exc.error_list]
    # A ValidationError iterates its formatted messages (params filled in).
    return [input_error(name, next(iter(error)), error.code or "invalid", index) for name, error in items]


class ServiceMutation(graphene.Mutation):
    """Base of every mutation: checks ``permissions`` first, then runs ``perform``.

    Subclasses declare ``permissions = ("app.add_thing",)`` (and ``staff_only = True`` for
    operators' mutations) and implement
    ``perform(cls, info, **arguments) -> dict`` returning the payload's fields. A Django
    ``ValidationError`` from the service becomes ``errors``/``fieldErrors`` in the payload (never
    a top-level error); a missing permission is a top-level error with no data.
    """

    class Meta:
        abstract = True

    permissions: tuple[str, ...] = ()
    staff_only = False

    errors = graphene.List(
        graphene.NonNull(graphene.String),
        required=True,
        description='Human-readable mistakes, each naming its field ("email: Email already exists"); empty on success.',
    )
    field_errors = graphene.List(
        graphene.NonNull(FieldError), required=True, description="The same mistakes, for programs."
    )

    @classmethod
    def perform(cls, info, **arguments) -> dict:
        raise NotImplementedError

    @classmethod
    def failure(cls, errors: list[InputError], **payload):
        """A payload reporting ``errors`` and no result; subclasses may add fields (a message)."""
        return cls(errors=[str(error) for error in errors], field_errors=errors, **payload)

    @classmethod
    def mutate(cls, root, info, **arguments):
        check_permissions(info.context, cls.permissions, staff=cls.staff_only)
        try:
            payload = cls.perform(info, **arguments)
        except ValidationError as exc:
            return cls.failure(errors_from_validation(exc))
        errors = payload.pop("input_errors", [])
        return cls(errors=[str(error) for error in errors], field_errors=errors, **payload)
