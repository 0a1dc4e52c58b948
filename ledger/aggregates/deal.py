"""Deal: a partner's registered sales opportunity, its review by the vendor,
its stage, and the 90-day protection it gives the partner over the customer."""

from __future__ import annotations

from datetime import date, timedelta

from ..timeline import business_date, shift
from .base import Context, LedgerAggregate, Refused

STAGES = ("new", "newsletter-subscription", "trial", "closed-won", "closed-lost")
OPEN_STAGES = STAGES[:3]
BILLING_OPTIONS = ("credit-card", "invoice", "partner")
DENY_REASONS = ("existing-customer", "invalid-lead", "duplicate")
REVIEWS = ("pending", "accepted", "denied")
PROTECTION_DAYS = 90


# -- the protection rule: its one home (the Deal, the pipeline, attention and the sweep call these) --
def protection_end(review: str, stage: str, lapsed: bool, last_action: date) -> date | None:
    """The first day a deal's protection no longer holds: PROTECTION_DAYS
    after its last action (registration, stage move, note), for a deal that
    is open, not denied and not lapsed; None for one that gives none. The
    arguments are the deal as it stands on the day asked about (seed rule:
    "a registered deal protects the customer for 90 days from its last action")."""
    if review == "denied" or stage not in OPEN_STAGES or lapsed:
        return None
    return last_action + timedelta(days=PROTECTION_DAYS)


def last_protected_action(day: date) -> date:
    """The latest last-action day whose protection has ended by `day` (the
    inverse of protection_end: an action on or before it no longer protects
    on `day`). Lets SQL narrow candidates by a date; the deal still decides."""
    return shift(day, -PROTECTION_DAYS)


class Deal(LedgerAggregate):
    KIND = "deal"
    ORDERED = True

    class Registered(LedgerAggregate.Created):
        deal: str
        partner: str
        domain: str
        customer_name: str
        contact_name: str
        customer_email: str
        note: str | None

        def apply(self, d: Deal) -> None:
            d.last_action = business_date(self.at)
            d.notes = 1 if self.note else 0

    class Accepted(LedgerAggregate.Event):
        def apply(self, d: Deal) -> None:
            d.review = "accepted"

    class Denied(LedgerAggregate.Event):
        reason: str
        detail: str | None

        def apply(self, d: Deal) -> None:
            d.review, d.deny_reason = "denied", self.reason

    class StageMoved(LedgerAggregate.Event):
        stage: str

        def apply(self, d: Deal) -> None:
            d.stage = self.stage
            d._touch(business_date(self.at))

    class NoteAdded(LedgerAggregate.Event):
        text: str

        def apply(self, d: Deal) -> None:
            d.notes += 1
            d._touch(business_date(self.at))

    class ClosedWon(LedgerAggregate.Event):
        billing: str
        order_number: str | None

        def apply(self, d: Deal) -> None:
            d.stage, d.billing, d.order_number = "closed-won", self.billing, self.order_number
            d.closed_on = business_date(self.at)

    class ClosedLost(LedgerAggregate.Event):
        note: str | None

        def apply(self, d: Deal) -> None:
            d.stage, d.closed_on = "closed-lost", business_date(self.at)
            if self.note:
                d.notes += 1

    class ProtectionLapsed(LedgerAggregate.Event):
        lapsed_on: date

        def apply(self, d: Deal) -> None:
            d.lapsed_on = self.lapsed_on

    def __init__(
        self, deal: str, partner: str, domain: str, customer_name: str,
        contact_name: str, customer_email: str, note: str | None,
    ) -> None:
        self.deal = deal
        self.partner = partner
        self.domain = domain
        self.customer_name = customer_name
        self.contact_name = contact_name
        self.customer_email = customer_email
        self.review = "pending"
        self.deny_reason: str | None = None
        self.stage = "new"
        self.billing: str | None = None
        self.order_number: str | None = None
        self.closed_on: date | None = None
        self.lapsed_on: date | None = None
        self.last_action: date = date.min
        self.notes = 0

    def _touch(self, day: date) -> None:
        self.last_action = max(self.last_action, day)

    # -- protection -------------------------------------------------------
    @property
    def protected_until(self) -> date | None:
        """The first day the protection no longer holds, or None if it gives none."""
        return protection_end(self.review, self.stage, self.lapsed_on is not None, self.last_action)

    def protects(self, day: date) -> bool:
        until = self.protected_until
        return until is not None and day < until

    def record_lapse_if_due(self, ctx: Context) -> bool:
        """Record the lapse once 90 days passed with no action, so a later action
        cannot silently revive a protection that another partner may rely on."""
        until = self.protected_until
        if until is None or ctx.day < until:
            return False
        self._trigger(self.ProtectionLapsed, ctx, lapsed_on=until)
        return True

    # -- commands ---------------------------------------------------------
    @classmethod
    def register(
        cls, deal: str, partner: str, domain: str, customer_name: str,
        contact_name: str, customer_email: str, note: str | None, ctx: Context,
    ) -> Deal:
        return cls._new(
            cls.Registered, deal, ctx, deal=deal, partner=partner, domain=domain,
            customer_name=customer_name, contact_name=contact_name,
            customer_email=customer_email, note=note,
        )

    def accept(self, ctx: Context) -> None:
        self._require_pending()
        self._trigger(self.Accepted, ctx)

    def deny(self, reason: str, ctx: Context, detail: str | None = None) -> None:
        self._require_pending()
        if reason not in DENY_REASONS:
            raise Refused(f"deny reason must be one of {', '.join(DENY_REASONS)}")
        self._trigger(self.Denied, ctx, reason=reason, detail=detail)

    def move(self, stage: str, ctx: Context) -> None:
        self._require_open()
        if stage not in OPEN_STAGES:
            raise Refused(f"move to one of {', '.join(OPEN_STAGES)}; use win or lose to close a deal")
        if STAGES.index(stage) <= STAGES.index(self.stage):
            raise Refused(f"deal {self.deal} is at stage {self.stage}; stages only move forward")
        self.record_lapse_if_due(ctx)
        self._trigger(self.StageMoved, ctx, stage=stage)

    def add_note(self, text: str, ctx: Context) -> None:
        if not text.strip():
            raise Refused("a note needs text", code="empty_note")
        self.record_lapse_if_due(ctx)
        self._trigger(self.NoteAdded, ctx, text=text)

    def win(self, billing: str, order_number: str | None, ctx: Context) -> None:
        """Close the deal won. Only a deal the vendor accepted can be won: its
        commission rests on the vendor's review (SPEC: pending "until the
        vendor marks it accepted"), so a pending deal is refused."""
        self._require_open()
        if self.review != "accepted":
            raise Refused(f"deal {self.deal} is {self.review} review; the vendor must accept it before it is won")
        if billing not in BILLING_OPTIONS:
            raise Refused(f"billing must be one of {', '.join(BILLING_OPTIONS)}")
        if billing == "invoice" and not (order_number and order_number.strip()):
            raise Refused("invoice billing requires an order number")
        self.record_lapse_if_due(ctx)
        self._trigger(self.ClosedWon, ctx, billing=billing, order_number=order_number)

    def lose(self, note: str | None, ctx: Context) -> None:
        self._require_open()
        self.record_lapse_if_due(ctx)
        self._trigger(self.ClosedLost, ctx, note=note)

    def _require_pending(self) -> None:
        if self.review != "pending":
            raise Refused(f"deal {self.deal} was already reviewed: {self.review}",
                          code="already_reviewed", facts={"deal": self.deal, "review": self.review})

    def _require_open(self) -> None:
        if self.review == "denied":
            raise Refused(f"deal {self.deal} was denied ({self.deny_reason})",
                          code="deal_denied", facts={"deal": self.deal, "reason": self.deny_reason})
        if self.stage not in OPEN_STAGES:
            raise Refused(f"deal {self.deal} is {self.stage}; closed is final",
                          code="deal_closed", facts={"deal": self.deal, "stage": self.stage})
