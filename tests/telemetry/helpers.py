"""Reading a `/metrics` page back: samples by name and labels, and what changed between two."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client.parser import text_string_to_metric_families

from agent_workflow.telemetry.exposition import render

Labels = frozenset[tuple[str, str]]
Samples = dict[tuple[str, Labels], float]


def parse(text: str) -> Samples:
    """Every sample of an exposition, keyed by (sample name, labels)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def scrape() -> Samples:
    """This process's metrics, as `/metrics` would show them."""
    return parse((await render()).decode())


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def delta(after: Samples, before: Samples, name: str, **labels: str) -> float:
    """How much `name` (restricted to `labels`) grew between two scrapes."""
    return total(after, name, **labels) - total(before, name, **labels)


def by_label(
    after: Samples, before: Samples, name: str, keys: tuple[str, ...], **labels: str
) -> dict[tuple[str, ...], float]:
    """The growth of `name` per combination of the label values `keys` (zeros left out)."""
    grown: dict[tuple[str, ...], float] = {}
    wanted = set(labels.items())
    for scrape_, sign in ((after, 1.0), (before, -1.0)):
        for (n, ls), value in scrape_.items():
            if n != name or not wanted <= ls:
                continue
            d: Mapping[str, str] = dict(ls)
            key = tuple(d.get(k, "") for k in keys)
            grown[key] = grown.get(key, 0.0) + sign * value
    return {k: v for k, v in grown.items() if v}
