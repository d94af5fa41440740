"""Scenario files: schema, loading with clear errors, built-in scenarios."""

from credsim.scenario.load import ScenarioError, builtin_names, load_scenario, scenario_hash
from credsim.scenario.schema import Scenario

__all__ = ["Scenario", "ScenarioError", "builtin_names", "load_scenario", "scenario_hash"]
