"""CRM domain models: customers, products, orders and their lines, API tokens.

Invariants live in the database as well as in validation (see the migrations for the
triggers): emails are unique under one normalisation (``email_key``), prices are positive, stock never goes
negative, order lines are immutable (they keep the unit price paid) and an order's
``total_amount`` always equals the sum of its lines.

Order history is never deleted with a customer: ``Order.customer`` is PROTECT, and a
customer that has orders is archived (``archived_at``) instead of deleted.
"""

import functools
import hashlib
import secrets
import unicodedata
from decimal import Decimal

import idna
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.utils import timezone

from alx_backend_graphql_crm.validation import validate_text

PHONE_VALIDATOR = RegexValidator(
    # [0-9], not \d: \d also matches Arabic-Indic and other Unicode digits.
    regex=r"^(\+[0-9]{7,15}|[0-9]{3}-[0-9]{3}-[0-9]{4})$",
    message="Enter a valid phone number: + and 7 to 15 digits, or 123-456-7890.",
    code="invalid_phone",
)


def email_key(email: str) -> str:
    """The one normalisation under which two emails are the same customer: NFKC and case folding, the domain
    under IDNA too.

    Computed in Python and stored (``Customer.email_key``, unique), so validation and the
    database index agree by construction: SQLite's LOWER() folds ASCII only and PostgreSQL's
    follows the server's locale, so neither can be asked. NFKC makes full-width letters their
    ASCII selves (``ｘ`` = ``x``); case folding makes ``ß`` equal ``ss`` and keeps the Turkish
    ``İ`` (``i`` + combining dot) and dotless ``ı`` apart from ``i``; NFKC again re-composes.
    The domain is then the one IDNA reads (``_domain_key``): ``xn--bcher-kva.de`` is ``bücher.de``.
    """
    folded = _fold(email)
    local, at, domain = folded.rpartition("@")
    if not at or (domain.isascii() and "xn--" not in domain):
        return folded  # nothing for IDNA to change: the common case, without its cost
    return f"{local}@{_domain_key(domain)}"


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())


@functools.lru_cache(maxsize=4096)  # customers share domains
def _domain_key(domain: str) -> str:
    """A folded domain as IDNA (UTS #46, the ``idna`` package) reads it: A-labels decoded to the Unicode labels
    they spell, then folded again (``xn--strae-oqa`` is ``straße``, so ``strasse``: folding treats the
    deviations ``ß`` and ``ς`` as UTS #46's transitional processing does). A domain IDNA 2008 refuses (an
    emoji, an underscore, an address literal, an A-label that decodes to nothing) keeps its folded spelling.
    """
    try:
        return _fold(idna.decode(domain, uts46=True))
    except idna.IDNAError:
        return domain


class EmailKeyField(models.CharField):
    """The column holding ``email_key(email)``, written on every save and bulk_create (pre_save)."""

    def pre_save(self, model_instance, add):
        value = email_key(model_instance.email or "")
        setattr(model_instance, self.attname, value)
        return value


class CustomerQuerySet(models.QuerySet):
    def active(self):
        return self.filter(archived_at__isnull=True)


class Customer(models.Model):
    # No database can store a lone surrogate, PostgreSQL no NUL: refused in validation, not by a crash on save.
    name = models.CharField(max_length=255, validators=[validate_text])
    email = models.EmailField(max_length=254, validators=[validate_text])
    email_key = EmailKeyField(max_length=254, editable=False, help_text="email_key(email): unique.")
    phone = models.CharField(max_length=20, blank=True, default="", validators=[validate_text, PHONE_VALIDATOR])
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    archived_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Set instead of deleting a customer who has order history.",
    )

    objects = CustomerQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["email_key"],
                name="crm_customer_email_key_unique",
                violation_error_message="Email already exists",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>"

    def clean_fields(self, exclude=None):
        super().clean_fields(exclude=exclude)
        # NFKC can lengthen text (one character may become 18): the key must fit its column.
        checked = not exclude or "email" not in exclude
        if checked and self.email and len(email_key(self.email)) > self._meta.get_field("email_key").max_length:
            raise ValidationError({"email": ValidationError("Enter a valid email address.", code="invalid")})

    def validate_constraints(self, exclude=None):
        # Report the uniqueness on the email field, computed from the email being validated
        # (the stored key is only written on save).
        if not exclude or "email" not in exclude:
            clash = Customer.objects.filter(email_key=email_key(self.email or ""))
            if self.pk:
                clash = clash.exclude(pk=self.pk)
            if self.email and clash.exists():
                raise ValidationError({"email": ValidationError("Email already exists", code="unique")})
        exclude = set(exclude or ()) | {"email", "email_key"}
        super().validate_constraints(exclude=exclude)


class Product(models.Model):
    name = models.CharField(max_length=255, validators=[validate_text])
    price = models.DecimalField(max_digits=12, decimal_places=2, validators=[MinValueValidator(Decimal("0.01"))])
    stock = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(price__gt=0),
                name="crm_product_price_positive",
                violation_error_message="Price must be greater than 0.",
            ),
            models.CheckConstraint(
                condition=models.Q(stock__gte=0),
                name="crm_product_stock_non_negative",
                violation_error_message="Stock cannot be negative.",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Order(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="orders")
    products = models.ManyToManyField(Product, through="OrderLine", related_name="orders")
    order_date = models.DateTimeField(default=timezone.now, db_index=True)
    # Maintained by database triggers from the order lines; never written by hand.
    total_amount = models.DecimalField(max_digits=14, decimal_places=2, default=Decimal("0"))

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(total_amount__gte=0), name="crm_order_total_non_negative"),
        ]

    def __str__(self) -> str:
        return f"Order #{self.pk}"


class OrderLine(models.Model):
    """One ordered unit price and quantity; immutable once written."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="order_lines")
    quantity = models.PositiveIntegerField(default=1)
    unit_price = models.DecimalField(max_digits=12, decimal_places=2)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(quantity__gte=1), name="crm_orderline_quantity_positive"),
            models.CheckConstraint(condition=models.Q(unit_price__gt=0), name="crm_orderline_unit_price_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.product_id} @ {self.unit_price}"

    @property
    def line_total(self) -> Decimal:
        return self.unit_price * self.quantity


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiToken(models.Model):
    """A bearer token for API clients; only its SHA-256 is stored."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, blank=True, default="")
    prefix = models.CharField(max_length=8, editable=False, help_text="First characters, to recognise a token.")
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"

    @classmethod
    def issue(cls, *, user, name: str = "") -> tuple["ApiToken", str]:
        """Create a token and return it with the raw value, which is never stored."""
        raw = secrets.token_urlsafe(32)
        token = cls.objects.create(user=user, name=name, prefix=raw[:8], token_hash=hash_token(raw))
        return token, raw

    @classmethod
    def authenticate(cls, raw: str):
        """The active user owning this raw token, or None."""
        token = (
            cls.objects.select_related("user")
            .filter(token_hash=hash_token(raw), revoked_at__isnull=True, user__is_active=True)
            .first()
        )
        if token is None:
            return None
        cls.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
        return token.user
