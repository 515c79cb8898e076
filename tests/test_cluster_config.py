"""The `ray up` configs pass Ray's own cluster-config validation and say what the design needs.

Ray's launcher runs ``prepare_config`` (defaults merged, the on-premises node type filled in)
and then ``validate_config`` (its JSON schema plus cross-field checks) before it calls any
cloud: the same two functions here, so a config that passes here is one `ray up` accepts.
"""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parent.parent


def validated(name: str) -> dict:
    raw = yaml.safe_load((ROOT / name).read_text())
    config = prepare_config(copy.deepcopy(raw))
    validate_config(config)
    return config


def test_aws_config_validates_with_a_cpu_head_and_autoscaled_cpu_and_gpu_groups():
    config = validated("cluster.yaml")
    assert config["provider"]["type"] == "aws"
    types = config["available_node_types"]
    assert config["head_node_type"] == "head"
    for group in ("cpu_workers", "gpu_workers"):
        assert types[group]["min_workers"] == 0 < types[group]["max_workers"], group
    assert types["gpu_workers"]["node_config"]["InstanceType"].startswith(("g", "p"))
    assert not types["head"]["node_config"]["InstanceType"].startswith(("g", "p"))


def test_aws_config_installs_this_project_with_the_right_flavour_on_each_group():
    config = validated("cluster.yaml")
    # prepare_config merges the global setup commands into head and worker setup commands.
    head = " ".join(config["head_setup_commands"])
    assert "scripts/install.sh postgres" in head and "WOW_RAY_FLAVOR=cpu" in head
    gpu = " ".join(config["available_node_types"]["gpu_workers"]["worker_setup_commands"])
    assert "scripts/install.sh postgres" in gpu and "WOW_RAY_FLAVOR=gpu" in gpu
    assert config["file_mounts"] == {"~/wow-ray": "."}


def test_aws_config_shares_storage_opens_serve_and_joins_with_the_token():
    config = validated("cluster.yaml")
    head_start = " ".join(config["head_start_ray_commands"])
    worker_start = " ".join(config["worker_start_ray_commands"])
    for start in (head_start, worker_start):
        assert "WOW_RAY_STORAGE_PATH=s3://" in start
        assert "--metrics-export-port=8080" in start
    assert "RAY_AUTH_MODE=token" in worker_start
    assert "~/.ray/auth_token" in config["cluster_synced_files"]
    ports = {
        (rule["FromPort"], rule["ToPort"])
        for rule in config["provider"]["security_group"]["IpPermissions"]
    }
    assert (8000, 8000) in ports


def test_on_premises_example_validates():
    config = validated("cluster.local.yaml")
    assert config["provider"]["type"] == "local"
    assert len(config["provider"]["worker_ips"]) == 2
    assert "WOW_RAY_STORAGE_PATH=" in " ".join(config["head_start_ray_commands"])


def test_validation_refuses_a_misspelt_field():
    """The check has teeth: a typo in a node type is an error, not a silently ignored key."""
    raw = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    raw["available_node_types"]["gpu_workers"]["max_worker"] = 4
    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepare_config(raw))
