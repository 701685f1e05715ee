"""Prepackaged runtimes, by their SeldonDeployment `implementation` name."""

from collections.abc import Mapping

from model_runtime.runtimes.sklearn import SKLearnServer

IMPLEMENTATIONS: Mapping[str, type] = {"SKLEARN_SERVER": SKLearnServer}

__all__ = ["IMPLEMENTATIONS", "SKLearnServer"]
