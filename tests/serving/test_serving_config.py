"""The deployment files of the serverless entry points agree with the code: cog.yaml names the predictor,
its inputs are the job options under the API's names and defaults, the RunPod image runs handler.py with
settings the service reads, and the SDK pins are the tested ones."""

from __future__ import annotations

import inspect
import re

import yaml

from api.inputs import JobOptions
from serving.inputs import INPUT_NAMES
from settings import Settings
from tests.support.app import ROOT


def test_cog_yaml_names_the_predictor_and_the_runtime_requirements():
    config = yaml.safe_load((ROOT / "cog.yaml").read_text())
    assert config["predict"] == "predict.py:Predictor"
    assert config["build"]["gpu"] is True and config["build"]["python_requirements"] == "requirements.txt"
    assert "curl" in config["build"]["system_packages"]  # setup() may fetch the checkpoints with it


def test_predictor_inputs_are_the_job_options():
    from predict import Predictor

    parameters = inspect.signature(Predictor.predict).parameters
    names = [name for name in parameters if name != "self"]
    assert sorted(names) == sorted(INPUT_NAMES)
    for name, field in JobOptions.model_fields.items():
        assert parameters[name].default.default == field.default, name


def test_runpod_image_runs_the_handler_with_settings_the_service_reads():
    dockerfile = (ROOT / "Dockerfile.runpod").read_text()
    assert re.search(r'^CMD \["python", "-u", "handler.py"\]$', dockerfile, re.M)
    assert "pip install -r /app/requirements-serverless.txt" in dockerfile
    env_block = dockerfile.split("\nENV PATH=", 1)[1].split("\n\n", 1)[0]
    names = re.findall(r"([A-Z_]+)=", "PATH=" + env_block)
    assert "SADTALKER_CHECKPOINT_DIR" in names
    assert all(name.lower() in Settings.model_fields for name in names if name != "PATH"), names


def test_sdk_pins_are_the_tested_ones():
    serverless = (ROOT / "requirements-serverless.txt").read_text().split()
    dev = (ROOT / "requirements-dev.txt").read_text().split()
    assert "-r" in serverless and "requirements.txt" in serverless
    assert "runpod==1.12.0" in serverless and "runpod==1.12.0" in dev and "cog==0.23.1" in dev
    import cog
    import runpod

    assert runpod.__version__ == "1.12.0" and cog.__version__ == "0.23.1"
