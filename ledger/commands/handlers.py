"""One small handler per command type: load the aggregates, check ownership,
let the aggregates validate, then trigger events. A handler checks everything
before the first event is triggered, so a refusal leaves nothing behind (the
unit of work makes sure: ledger/unitofwork.py). What a command finds due on
the way (a protection that lapsed, a trial that expired) is recorded only
after its checks. A new aggregate (Deal.register, Trial.start,
Subscription.start) checks its own fields before its first event and is part
of the command's effects only once added to the unit of work.

A handler returns an optional note for the per-line report (e.g. why a deal
was denied at once). Which handler runs for which command type is declared in
`registry.py`."""

from __future__ import annotations

from datetime import date
from typing import Protocol, TypeVar

from .. import authority, money
from ..aggregates import Customer, Deal, IssuedStatement, Partner, Refused, Subscription, Trial, UsageDay
from ..aggregates.base import Context, LedgerAggregate
from ..aggregates.token import Token
from ..errors import Note
from ..identity import customer_domain, registrable_domain, registrable_or_none
from . import models as m

A = TypeVar("A", bound=LedgerAggregate)


class UnitOfWork(Protocol):
    def get(self, cls: type[A], key: str) -> A | None: ...
    def add(self, aggregate: LedgerAggregate) -> None: ...


def _require(uow: UnitOfWork, cls: type[A], key: str) -> A:
    agg = uow.get(cls, key)
    if agg is None:
        raise Refused(f"no {cls.KIND} {key!r}")
    return agg


def _absent(uow: UnitOfWork, cls: type[LedgerAggregate], key: str) -> None:
    if uow.get(cls, key) is not None:
        raise Refused(f"{cls.KIND} {key!r} already exists")


def _domain(text: str) -> str:
    """The customer a given domain (or host name) stands for."""
    try:
        return customer_domain(text)
    except ValueError as e:  # BadInput: refused here, its code kept
        raise Refused(str(e), code=getattr(e, "code", None), facts=getattr(e, "facts", None)) from None


def _customer_email(partner: Partner, email: str) -> str:
    domain = _domain(email)
    if partner.owns_domain(domain):
        raise Refused(
            f"{email} is on partner {partner.partner}'s own domain; "
            "register the customer's name and email, not your own",
            code="own_domain", facts={"email": email},
        )
    return domain


def _recognise(uow: UnitOfWork, domain: str, name: str, ctx: Context) -> Customer:
    """A customer the ledger meets for the first time, added to the unit of work."""
    customer = Customer.recognise(domain, name, ctx)
    uow.add(customer)
    return customer


def _deal_of_record(uow: UnitOfWork, customer: Customer | None) -> Deal | None:
    """The deal whose protection the customer recorded last (it may have run
    out since: `_protects`), or None."""
    return _require(uow, Deal, customer.protecting_deal) if customer is not None and customer.protecting_deal else None


def _latest_trial(uow: UnitOfWork, customer: Customer | None) -> Trial | None:
    """The customer's latest trial (it may have ended: `_runs`), or None."""
    return _require(uow, Trial, customer.trial) if customer is not None and customer.trial else None


def _protects(deal: Deal | None, ctx: Context) -> Deal | None:
    """The deal if it protects its customer on the command's effective day."""
    return deal if deal is not None and deal.protects(ctx.day) else None


def _runs(trial: Trial | None, ctx: Context) -> Trial | None:
    """The trial if it runs on the command's effective day."""
    return trial if trial is not None and trial.runs_on(ctx.day) else None


def _claimed_by_other(protecting: Deal | None, running: Trial | None, partner: str) -> date | None:
    """Until when another partner holds the customer, or None: a live deal
    protection or a running trial of another partner claims it alike
    (seed: a trial makes the customer the partner's). Names no partner."""
    if protecting is not None and protecting.partner != partner:
        return protecting.protected_until
    if running is not None and running.partner != partner:
        return running.ends_on
    return None


# -- partners -------------------------------------------------------------
def enroll_partner(uow: UnitOfWork, d: m.EnrollPartner, ctx: Context) -> str | None:
    _absent(uow, Partner, d.partner)
    domains = list(dict.fromkeys(_partner_domain(x) for x in d.domains))
    if not domains:
        raise Refused("a partner needs at least one email domain")
    uow.add(Partner.enroll(d.partner, d.name, domains, d.commission_rate, ctx))
    return None


def _partner_domain(text: str) -> str:
    """A partner's own email domain, by the same identity as its customers'."""
    try:
        return registrable_domain(text)
    except ValueError as e:
        raise Refused(str(e)) from None


def set_commission_rate(uow: UnitOfWork, d: m.SetCommissionRate, ctx: Context) -> str | None:
    _require(uow, Partner, d.partner).set_rate(d.commission_rate, ctx)
    return f"rate {d.commission_rate} from {ctx.day}"


# -- deals ----------------------------------------------------------------
def _partners_customer(
    uow: UnitOfWork, partner_id: str, email: str, ctx: Context, what: str, new: tuple[type, str]
) -> tuple[str, Customer | None]:
    """What registering a deal and starting a trial share: the partner acts for
    itself, the record is new, and the email identifies a company that is not
    the partner itself. Returns the customer's domain and its aggregate (None:
    the ledger has not met it yet)."""
    authority.owner(_actor(ctx), partner_id, f"partner {partner_id}'s {what}")
    partner = _require(uow, Partner, partner_id)
    _absent(uow, *new)
    domain = _customer_email(partner, email)
    return domain, uow.get(Customer, domain)


def register_deal(uow: UnitOfWork, d: m.RegisterDeal, ctx: Context) -> str | None:
    domain, customer = _partners_customer(uow, d.partner, d.customer_email, ctx, "deals", (Deal, d.deal))
    of_record = _deal_of_record(uow, customer)
    protecting = _protects(of_record, ctx)
    if protecting is not None and protecting.partner == d.partner:
        raise Refused(
            f"{domain} is already protected by your deal {protecting.deal} "
            f"until {protecting.protected_until}; add a note to it instead",
            code="already_yours",
            facts={"domain": domain, "deal": protecting.deal, "until": protecting.protected_until},
        )
    claimed_until = _claimed_by_other(protecting, _runs(_latest_trial(uow, customer), ctx), d.partner)
    # Everything is checked: from here on, only events.
    if of_record is not None:
        of_record.record_lapse_if_due(ctx)  # a protection found lapsed is recorded as lapsed
    customer = customer or _recognise(uow, domain, d.customer_name, ctx)
    deal = Deal.register(
        d.deal, d.partner, domain, d.customer_name, d.contact_name,
        d.customer_email, d.note, ctx,
    )
    uow.add(deal)
    # The ledger detects duplicates and existing customers itself: the deal is
    # recorded (the partner sees it) and denied at once with the reason.
    system = Context(ctx.command_id, "system", ctx.at, ctx.recorded)
    if customer.is_paying:
        deal.deny("existing-customer", system, f"{domain} already has an active subscription")
        return Note(f"denied at once: existing-customer ({domain} already pays)",
                    "existing_customer", {"domain": domain})
    if claimed_until is not None:
        # Never names the other partner: partners must not learn each other's customers.
        detail = f"protected by another partner until {claimed_until}"
        deal.deny("duplicate", system, detail)
        return Note(f"denied at once: duplicate ({detail})", "duplicate", {"until": claimed_until})
    customer.claim_protection(d.deal, d.partner, ctx)
    return None


def _deal(uow: UnitOfWork, deal_id: str, ctx: Context) -> Deal:
    deal = _require(uow, Deal, deal_id)
    authority.owner(_actor(ctx), deal.partner, f"deal {deal_id}")
    return deal


def accept_deal(uow: UnitOfWork, d: m.AcceptDeal, ctx: Context) -> str | None:
    _deal(uow, d.deal, ctx).accept(ctx)
    return None


def deny_deal(uow: UnitOfWork, d: m.DenyDeal, ctx: Context) -> str | None:
    _deal(uow, d.deal, ctx).deny(d.reason, ctx)
    return None


def move_deal(uow: UnitOfWork, d: m.MoveDeal, ctx: Context) -> str | None:
    _deal(uow, d.deal, ctx).move(d.stage, ctx)
    return None


def add_deal_note(uow: UnitOfWork, d: m.AddDealNote, ctx: Context) -> str | None:
    _deal(uow, d.deal, ctx).add_note(d.text, ctx)
    return None


def win_deal(uow: UnitOfWork, d: m.WinDeal, ctx: Context) -> str | None:
    _deal(uow, d.deal, ctx).win(d.billing, d.order_number, ctx)
    return None


def lose_deal(uow: UnitOfWork, d: m.LoseDeal, ctx: Context) -> str | None:
    _deal(uow, d.deal, ctx).lose(d.note, ctx)
    return None


# -- trials ---------------------------------------------------------------
def start_trial(uow: UnitOfWork, d: m.StartTrial, ctx: Context) -> str | None:
    domain, customer = _partners_customer(uow, d.partner, d.customer_email, ctx, "trials", (Trial, d.trial))
    if customer is not None and customer.is_paying:
        raise Refused(f"{domain} already has an active subscription; no trial needed",
                      code="already_paying", facts={"domain": domain})
    of_record = _deal_of_record(uow, customer)
    latest = _latest_trial(uow, customer)
    running = _runs(latest, ctx)
    claimed_until = _claimed_by_other(_protects(of_record, ctx), running, d.partner)
    if claimed_until is not None:  # another partner's deal or running trial holds it
        raise Refused(f"{domain} is protected by another partner until {claimed_until}",
                      code="protected_by_other", facts={"domain": domain, "until": claimed_until})
    if running is not None:  # (another partner's running trial was refused above)
        raise Refused(f"{domain} already has trial {running.trial} running until {running.ends_on}",
                      code="trial_running", facts={"domain": domain, "trial": running.trial, "until": running.ends_on})
    trial = Trial.start(d.trial, d.partner, domain, d.customer_name, d.customer_email, d.days, ctx)  # checks days
    # Everything is checked: from here on, only events.
    if of_record is not None:
        of_record.record_lapse_if_due(ctx)
    customer = customer or _recognise(uow, domain, d.customer_name, ctx)
    if latest is not None:
        latest.expire_if_due(ctx)
    uow.add(trial)
    customer.attach_trial(d.trial, d.partner, ctx)
    return f"runs until {trial.ends_on}"


def extend_trial(uow: UnitOfWork, d: m.ExtendTrial, ctx: Context) -> str | None:
    trial = _require(uow, Trial, d.trial)
    authority.owner(_actor(ctx), trial.partner, f"trial {d.trial}")
    trial.extend(ctx)
    return f"runs until {trial.ends_on}"


# -- subscriptions ----------------------------------------------------------
def start_subscription(uow: UnitOfWork, d: m.StartSubscription, ctx: Context) -> str | None:
    _absent(uow, Subscription, d.subscription)
    billing, order_number = d.billing, d.order_number
    of_record: Deal | None = None  # the deal of record whose lapse may be due (no deal named)
    if d.deal:
        deal = _won_deal(uow, d)
        domain, partner = deal.domain, deal.partner
        billing, order_number = billing or deal.billing, order_number or deal.order_number
        customer: Customer | None = _require(uow, Customer, domain)
        for active in sorted(customer.active_subscriptions):
            sub = uow.get(Subscription, active)
            if sub is not None and sub.deal == d.deal:
                raise Refused(f"deal {d.deal} already has active subscription {active}; a deal has at most one")
    else:
        assert d.customer_domain is not None  # the model requires it without a deal
        domain = _domain(d.customer_domain)
        customer = uow.get(Customer, domain)
        # Attributed to the partner whose trial runs, else whose deal protects,
        # else whose customer it already is.
        trial = _runs(_latest_trial(uow, customer), ctx)
        of_record = _deal_of_record(uow, customer)
        protecting = _protects(of_record, ctx)
        partner = (trial.partner if trial else protecting.partner if protecting
                   else customer.partner if customer else None)
    assert billing is not None  # the model requires it without a deal; a won deal has one
    sub = Subscription.start(  # checks its own fields; joins the unit of work below
        d.subscription, domain, partner, d.deal, d.plan, d.amount, d.currency,
        d.period, billing, order_number, ctx,
    )
    trial = _runs(_latest_trial(uow, customer), ctx)  # its trial converts (below)
    # Everything is checked: from here on, only events.
    if of_record is not None:
        of_record.record_lapse_if_due(ctx)
    customer = customer or _recognise(uow, domain, domain, ctx)
    uow.add(sub)
    customer.attach_subscription(d.subscription, partner, ctx)
    if trial is not None and partner is not None and trial.partner == partner:
        trial.convert(d.subscription, ctx)  # only the attributed partner's trial converts
    return f"partner {partner}" if partner else "direct customer (no partner)"


def _won_deal(uow: UnitOfWork, d: m.StartSubscription) -> Deal:
    """The won deal a subscription starts from; refuses given fields that
    contradict it (customer, billing, order number)."""
    assert d.deal is not None
    deal = _require(uow, Deal, d.deal)
    if d.customer_domain is not None:
        given = _domain(d.customer_domain)
        # A deal keeps the identity it was registered with; compare by today's rule too.
        if given not in (deal.domain, registrable_or_none(deal.domain)):
            raise Refused(f"deal {d.deal} is for {deal.domain}, not {given}")
    if deal.review == "denied":
        raise Refused(f"deal {d.deal} was denied ({deal.deny_reason}); it gets no subscription")
    if deal.stage != "closed-won":
        raise Refused(f"deal {d.deal} is {deal.stage}; win it before starting its subscription")
    if d.billing is not None and d.billing != deal.billing:
        raise Refused(f"deal {d.deal} was won with billing {deal.billing}, not {d.billing}")
    if d.order_number is not None and deal.order_number and d.order_number != deal.order_number.strip():
        raise Refused(f"deal {d.deal} was won with order number {deal.order_number}, not {d.order_number}")
    return deal


def renew_subscription(uow: UnitOfWork, d: m.RenewSubscription, ctx: Context) -> str | None:
    sub = _require(uow, Subscription, d.subscription)
    sub.renew(ctx)
    return f"charge {sub.latest.number}: {money.format_money(sub.latest.amount, sub.currency)} {sub.currency}"


def cancel_subscription(uow: UnitOfWork, d: m.CancelSubscription, ctx: Context) -> str | None:
    sub = _require(uow, Subscription, d.subscription)
    customer = _require(uow, Customer, sub.domain)
    sub.cancel(ctx)
    customer.detach_subscription(d.subscription, ctx)
    return None


def refund(uow: UnitOfWork, d: m.Refund, ctx: Context) -> str | None:
    _require(uow, Subscription, d.subscription).refund(d.amount, d.charge, ctx)
    return None


# -- usage and time ---------------------------------------------------------
def report_usage(uow: UnitOfWork, d: m.ReportUsage, ctx: Context) -> str | None:
    domain = _domain(d.customer_domain)
    existing = uow.get(UsageDay, UsageDay.key(domain, ctx.day))
    usage = UsageDay.report(existing, domain, ctx, d.users, d.framework, d.progress, d.activities)
    if existing is None:
        uow.add(usage)
    return None


def sweep(uow: UnitOfWork, d: m.Sweep, ctx: Context) -> str | None:
    lapsed = sum(1 for key in d.deals if (deal := _swept(uow, Deal, key)) and deal.record_lapse_if_due(ctx))
    expired = sum(1 for key in d.trials if (trial := _swept(uow, Trial, key)) and trial.expire_if_due(ctx))
    return f"{lapsed} protections lapsed, {expired} trials expired"


def _swept(uow: UnitOfWork, cls: type[A], key: str) -> A | None:
    """A sweep's candidate, or None when a fact of it (or of its customer) is
    dated after the sweep: it is left for a later sweep, not the whole sweep refused."""
    try:
        return uow.get(cls, key)
    except Refused:
        return None


def issue_statement(uow: UnitOfWork, d: m.IssueStatement, ctx: Context) -> str | None:
    key = IssuedStatement.key(d.partner, d.month)
    existing = uow.get(IssuedStatement, key)
    uow.add(IssuedStatement.issue(existing, d.partner, d.month, d.position, d.fingerprint, d.totals, d.lines, ctx))
    return f"sha256 {d.fingerprint}"


def issue_token(uow: UnitOfWork, d: m.IssueToken, ctx: Context) -> str | None:
    try:
        holder = authority.Actor.parse(d.actor)
    except ValueError as e:
        raise Refused(str(e)) from None
    authority.may_issue_token(_actor(ctx), holder)
    uow.add(Token.issue(uow.get(Token, d.name), d.name, str(holder), d.digest, ctx))
    return None


def revoke_token(uow: UnitOfWork, d: m.RevokeToken, ctx: Context) -> str | None:
    authority.may_manage_tokens(_actor(ctx))
    _require(uow, Token, d.name).revoke(ctx)
    return None



def _actor(ctx: Context) -> authority.Actor:
    return authority.Actor(ctx.actor)

