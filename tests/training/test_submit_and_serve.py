"""The issue's 'done when': a fine-tuning job submitted with `ray job submit` to a local Ray
registers a LoRA adapter over SmolLM2-135M, and the running LLM app (vLLM on the CPU) serves
it by name at once, without restarting the base model.

The job runs on a second local Ray started with its dashboard (the Jobs API lives there); it
shares only the storage path, and so the registry, with the LLM app of the test session.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from wow_ray.registry import EntryKind

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
HELLO = [{"role": "user", "content": "My order is late."}]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_job_agent(client_cls, address: str, timeout_s: float = 240) -> None:
    """The dashboard and its job agent start a while after the head: run a no-op job until
    one succeeds."""
    from ray.job_submission import JobStatus

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            client = client_cls(address)
            job = client.submit_job(entrypoint="true")
            while not (status := client.get_job_status(job)).is_terminal():
                time.sleep(1)
            if status == JobStatus.SUCCEEDED:
                return
        except Exception:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError("the Ray Jobs API did not accept a job in time")
        time.sleep(2)


@pytest.fixture(scope="module")
def jobs_address():
    """A second local Ray with its dashboard (the Jobs API), on ports of its own, so it runs
    beside any other Ray on the machine. `ray start --block` owns the processes it starts and
    stops them when interrupted; nothing else on the machine is touched."""
    from ray.job_submission import JobSubmissionClient

    ports = {name: _free_port() for name in ("port", "dashboard-port",
                                             "dashboard-agent-listen-port",
                                             "ray-client-server-port")}
    args = [f"--{name}={port}" for name, port in ports.items()]
    head = subprocess.Popen(
        [str(Path(sys.executable).parent / "ray"), "start", "--head", "--block",
         "--num-cpus=8", "--dashboard-host=127.0.0.1", "--include-dashboard=true", *args],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"})
    try:
        address = f"http://127.0.0.1:{ports['dashboard-port']}"
        _wait_for_job_agent(JobSubmissionClient, address)
        yield address
    finally:
        head.send_signal(signal.SIGINT)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            head.terminate()
            head.wait(timeout=30)
        # `ray start` records its address for `address="auto"`; drop the record if it is ours.
        record = Path("/tmp/ray/ray_current_cluster")
        if record.is_file() and record.read_text().strip().endswith(f":{ports['port']}"):
            record.unlink()


def test_a_submitted_job_registers_an_adapter_the_llm_app_serves_by_name(
        jobs_address, served_llm, registry, sft_dataset, tmp_path):
    from ray.job_submission import JobStatus, JobSubmissionClient

    from wow_ray.llm.client import OpenAIChatClient

    config = {
        "base_model": "smollm2-135m", "dataset": sft_dataset.ref,
        "output_name": "smollm2-support-sft", "storage_path": registry.storage.root,
        "lora": {"r": 8, "alpha": 16}, "workers": 1, "seq_len": 256, "max_steps": 2,
        "warmup_steps": 0, "lr": 5e-3, "eval_max_rows": 2, "checkpoint_every": 10,
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(config))
    submission = f"finetune-{int(time.time())}"
    ray_cli = Path(sys.executable).parent / "ray"
    done = subprocess.run(
        [str(ray_cli), "job", "submit", "--address", jobs_address, "--submission-id", submission,
         "--runtime-env-json", json.dumps({"env_vars": {"PYTHONPATH": str(REPO)}}), "--",
         sys.executable, "-m", "train_jobs.finetune", "--config", str(path)],
        capture_output=True, text=True, timeout=900, cwd=REPO)
    status = JobSubmissionClient(jobs_address).get_job_status(submission)
    assert status == JobStatus.SUCCEEDED, done.stdout[-3000:] + done.stderr[-3000:]

    entry = registry.get(EntryKind.ADAPTER, "smollm2-support-sft")
    assert entry.lineage["job_id"] == submission
    assert entry.base_model.startswith("smollm2-135m:")
    assert f'"registered": "{entry.ref}"' in done.stdout

    time.sleep(2.5)  # the ingress re-reads the registry's adapters at most every two seconds
    with OpenAIChatClient(served_llm) as client:
        assert f"smollm2-135m:{entry.ref}" in client.models()
        reply = client.complete(HELLO, model="smollm2-135m:smollm2-support-sft", max_tokens=8,
                                temperature=0)
    assert reply["model"] == f"smollm2-135m:{entry.ref}"
    assert reply["choices"][0]["message"]["content"].strip()
