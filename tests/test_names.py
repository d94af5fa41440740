"""The scenario schema and the metric names use the vocabulary of :mod:`credsim.names`."""

from __future__ import annotations

import typing

import pytest

from credsim import names
from credsim.scenario import schema


def test_schema_literals_match_names() -> None:
    assert typing.get_args(schema.BehaviourKind) == names.KINDS


def test_metric_builders_and_descriptions() -> None:
    assert names.LISTED("court") == "listed.court"
    assert names.LISTED.member("listed.court") == "court"
    assert names.EVENTS.like() == "events.%"
    assert names.describe("events.traffic.jaywalk").endswith("traffic.jaywalk")
    assert names.describe(names.DENIED_CROSS_CONTEXT_SUM).startswith("sum over denials")
    with pytest.raises(KeyError):
        names.describe("no_such_metric")
