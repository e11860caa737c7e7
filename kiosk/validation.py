"""The kiosk's local validation: how its refer/low decision compares with what doctors found.

A pure computation over :class:`Case` values (one per stored screening, with
its newest outcome), so the same numbers come out of ``kiosk
validation-report``, the settings page and the tests. Sensitivity is the
share of biopsy-confirmed melanomas the kiosk referred; specificity the share
of lesions a doctor called benign that the kiosk called low. Both carry 95%
Wilson intervals (:func:`kiosk.metrics.wilson_interval`: honest at the small
counts a health centre collects). Other skin cancers are counted apart (how
many were referred); retakes and errors never had a decision and are counted
apart too; "not seen yet" and no outcome at all are *pending*.

This is the start of a local validation study, not a result: with a handful
of confirmed cases the intervals are wide, and only the confirmed cases count
(referred lesions are far more likely to be biopsied than low ones, so the
sensitivity here is optimistic until low-risk patients are followed up too).

>>> cases = [Case(decision="refer", outcome="melanoma")] * 3 + [Case(decision="low", outcome="melanoma")]
>>> cases += [Case(decision="low", outcome="benign")] * 2 + [Case(decision="refer", outcome="benign")] * 3
>>> report = validation_report(cases)
>>> report.overall.sensitivity.text(), report.overall.specificity.text()
('3/4 = 75% (95% CI 30-95%)', '2/5 = 40% (95% CI 12-77%)')
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from .metrics import wilson_interval
from .records import BODY_SITE_GROUPS, OUTCOMES, ClinicalOutcome, RecordStore, StoredScreening

__all__ = [
    "NOT_RECORDED",
    "Case",
    "Confusion",
    "Proportion",
    "ValidationReport",
    "case_from_screening",
    "cases_from_records",
    "report_from_store",
    "validation_report",
]

Decision = Literal["refer", "low", "retake", "error"]
Z_95 = statistics.NormalDist().inv_cdf(0.975)  # 1.95996..., not the rounded 1.96
#: The group of a case whose body site or skin type was not given.
NOT_RECORDED = "not_recorded"
SKIN_TYPES: tuple[str, ...] = ("1", "2", "3", "4", "5", "6")
CSV_FIELDS = (
    "grouping",
    "group",
    "melanoma_referred",
    "melanoma_low",
    "benign_low",
    "benign_referred",
    "sensitivity",
    "sensitivity_ci95_low",
    "sensitivity_ci95_high",
    "specificity",
    "specificity_ci95_low",
    "specificity_ci95_high",
)


@dataclass(frozen=True, kw_only=True)
class Case:
    """One screening as the report sees it: the kiosk's decision and the newest outcome (None: none yet)."""

    decision: Decision
    outcome: str | None = None  # one of kiosk.records.OUTCOMES
    unclear: bool = False  # referred because the photo barely looked like a lesion (reason lesion_unclear)
    body_site_group: str | None = None
    skin_type: int | None = None
    screening_id: str = ""


@dataclass(frozen=True)
class Proportion:
    """``successes`` of ``total`` with its 95% Wilson interval (nan when ``total`` is 0).

    >>> Proportion(3, 4).value, [round(x, 4) for x in Proportion(3, 4).interval]
    (0.75, [0.3006, 0.9544])
    """

    successes: int
    total: int

    @property
    def value(self) -> float:
        return self.successes / self.total if self.total else math.nan

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.successes, self.total, z=Z_95)

    def text(self) -> str:
        """``3/4 = 75% (95% CI 30-95%)``, or ``0/0`` with nothing to show."""
        if not self.total:
            return "0/0"
        low, high = self.interval
        return f"{self.successes}/{self.total} = {self.value:.0%} (95% CI {low * 100:.0f}-{high * 100:.0f}%)"

    def to_dict(self) -> dict[str, Any]:
        low, high = self.interval
        return {
            "successes": self.successes,
            "total": self.total,
            "value": _number(self.value),
            "ci95": [_number(low), _number(high)],
        }


@dataclass
class Confusion:
    """The refer/low decision against melanoma/benign, for the cases of one group."""

    melanoma_referred: int = 0  # true positives
    melanoma_low: int = 0  # false negatives: the ones that matter most
    benign_low: int = 0  # true negatives
    benign_referred: int = 0  # false positives

    @property
    def sensitivity(self) -> Proportion:
        return Proportion(self.melanoma_referred, self.melanoma_referred + self.melanoma_low)

    @property
    def specificity(self) -> Proportion:
        return Proportion(self.benign_low, self.benign_low + self.benign_referred)

    @property
    def cases(self) -> int:
        return self.melanoma_referred + self.melanoma_low + self.benign_low + self.benign_referred

    def add(self, *, referred: bool, melanoma: bool) -> None:
        if melanoma:
            if referred:
                self.melanoma_referred += 1
            else:
                self.melanoma_low += 1
        elif referred:
            self.benign_referred += 1
        else:
            self.benign_low += 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "melanoma_referred": self.melanoma_referred,
            "melanoma_low": self.melanoma_low,
            "benign_low": self.benign_low,
            "benign_referred": self.benign_referred,
            "sensitivity": self.sensitivity.to_dict(),
            "specificity": self.specificity.to_dict(),
        }


@dataclass(kw_only=True)
class ValidationReport:
    """What :func:`validation_report` found; ``to_dict`` is the ``--json`` output."""

    screenings: int = 0
    referred: int = 0
    low: int = 0
    retakes: int = 0  # retake or error: the kiosk made no decision
    referred_unclear: int = 0  # of ``referred``: because the photo was unclear
    overall: Confusion = field(default_factory=Confusion)
    other_skin_cancer: Proportion = Proportion(0, 0)  # referred / confirmed other skin cancers
    by_body_site: dict[str, Confusion] = field(default_factory=dict)
    by_skin_type: dict[str, Confusion] = field(default_factory=dict)
    pending: int = 0  # referred, and no doctor has said what it is yet
    outcomes: dict[str, int] = field(default_factory=dict)  # newest outcome kind -> screenings
    outcomes_on_retakes: int = 0  # outcomes for screenings without a decision (not in any figure above)
    other_outcomes: int = 0  # "other": seen, neither benign nor a skin cancer (not in sensitivity/specificity)

    @property
    def confirmed(self) -> int:
        return self.overall.cases + self.other_skin_cancer.total

    def to_dict(self) -> dict[str, Any]:
        return {
            "note": NOTE,
            "screenings": self.screenings,
            "referred": self.referred,
            "referred_unclear": self.referred_unclear,
            "low": self.low,
            "retakes": self.retakes,
            "confirmed": self.confirmed,
            "pending": self.pending,
            "outcomes": dict(self.outcomes),
            "outcomes_on_retakes": self.outcomes_on_retakes,
            "other_outcomes": self.other_outcomes,
            "overall": self.overall.to_dict(),
            "other_skin_cancer_referred": self.other_skin_cancer.to_dict(),
            "by_body_site": {k: v.to_dict() for k, v in self.by_body_site.items()},
            "by_skin_type": {k: v.to_dict() for k, v in self.by_skin_type.items()},
        }

    def groups(self) -> list[tuple[str, str, Confusion]]:
        """(grouping, group, counts): overall first, then each body-site group and skin type with cases."""
        rows = [("overall", "all", self.overall)]
        rows += [("body_site", k, v) for k, v in self.by_body_site.items()]
        rows += [("skin_type", k, v) for k, v in self.by_skin_type.items()]
        return rows

    def to_csv(self) -> str:
        """One row per group (``CSV_FIELDS``); empty proportions are blank cells, not nan."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_FIELDS)
        for grouping, group, c in self.groups():
            cells: list[object] = [grouping, group, c.melanoma_referred, c.melanoma_low]
            cells += [c.benign_low, c.benign_referred]
            for p in (c.sensitivity, c.specificity):
                low, high = p.interval
                cells += [_cell(p.value), _cell(low), _cell(high)]
            writer.writerow(cells)
        return out.getvalue()


#: Said with every report, on the page and in the command's output.
NOTE = (
    "This is the start of a local validation study, with small numbers: only cases a doctor confirmed count, "
    "and the intervals are wide until many more are recorded."
)


def validation_report(cases: Iterable[Case]) -> ValidationReport:
    """Count ``cases`` into a :class:`ValidationReport` (groups in the body map's and skin types' order)."""
    report = ValidationReport()
    by_site: dict[str, Confusion] = {}
    by_skin: dict[str, Confusion] = {}
    other_cancer_referred = other_cancer = 0
    outcome_counts = dict.fromkeys(OUTCOMES, 0)
    for case in cases:
        report.screenings += 1
        if case.outcome is not None:
            outcome_counts[case.outcome] = outcome_counts.get(case.outcome, 0) + 1
        if case.decision not in ("refer", "low"):
            report.retakes += 1
            report.outcomes_on_retakes += case.outcome is not None
            continue
        referred = case.decision == "refer"
        report.referred += referred
        report.low += not referred
        report.referred_unclear += referred and case.unclear
        if referred and case.outcome in (None, "not_seen"):
            report.pending += 1
        if case.outcome == "other_skin_cancer":
            other_cancer += 1
            other_cancer_referred += referred
        elif case.outcome == "other":
            report.other_outcomes += 1
        elif case.outcome in ("melanoma", "benign"):
            melanoma = case.outcome == "melanoma"
            report.overall.add(referred=referred, melanoma=melanoma)
            site = case.body_site_group or NOT_RECORDED
            by_site.setdefault(site, Confusion()).add(referred=referred, melanoma=melanoma)
            skin = str(case.skin_type) if case.skin_type is not None else NOT_RECORDED
            by_skin.setdefault(skin, Confusion()).add(referred=referred, melanoma=melanoma)
    report.other_skin_cancer = Proportion(other_cancer_referred, other_cancer)
    report.outcomes = outcome_counts
    report.by_body_site = _ordered(by_site, (*BODY_SITE_GROUPS, NOT_RECORDED))
    report.by_skin_type = _ordered(by_skin, (*SKIN_TYPES, NOT_RECORDED))
    return report


def case_from_screening(screening: StoredScreening, outcome: ClinicalOutcome | None) -> Case:
    """The :class:`Case` of a stored screening and its newest outcome."""
    result = screening.result
    decision: Decision
    if result.status == "ok":
        decision = "refer" if result.risk == "refer" else "low"
    else:
        decision = "retake" if result.status == "retake" else "error"
    patient = screening.patient
    return Case(
        screening_id=screening.id,
        decision=decision,
        outcome=outcome.outcome if outcome is not None else None,
        unclear=result.reason == "lesion_unclear",
        body_site_group=patient.body_site_group if patient is not None else None,
        skin_type=patient.skin_type if patient is not None else None,
    )


def cases_from_records(screenings: Iterable[StoredScreening], outcomes: Mapping[str, ClinicalOutcome]) -> list[Case]:
    """Every screening as a case, with its newest outcome from ``outcomes`` (``RecordStore.latest_outcomes()``)."""
    return [case_from_screening(s, outcomes.get(s.id)) for s in screenings]


def report_from_store(records: RecordStore) -> ValidationReport:
    """The report over every screening in ``records`` and its newest outcome."""
    everything = records.between(datetime(1970, 1, 1, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC))
    return validation_report(cases_from_records(everything, records.latest_outcomes()))


def _ordered(groups: dict[str, Confusion], order: tuple[str, ...]) -> dict[str, Confusion]:
    rank = {name: i for i, name in enumerate(order)}
    return dict(sorted(groups.items(), key=lambda item: (rank.get(item[0], len(rank)), item[0])))


def _number(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 4)


def _cell(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.4f}"
