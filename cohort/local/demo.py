"""``make demo``: the main path, end to end, on the local platform.

A scientist and an app developer sign up; the developer registers an app and
its dataset; the scientist uploads a small CNN and trains it by federated
learning on simulated devices, then scores the downloaded model on held-out
digits. The job asked for a robustness evaluation of its trained model, which
the evaluator runs once training completes; the demo prints its headline
numbers and saves its report. The welcome, training-finished and
evaluation-finished emails land in the platform's outbox.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from email import policy
from email.parser import BytesHeaderParser
from pathlib import Path

import torch

from cohort.catalogue import Group
from cohort.datasets import digits
from cohort.domain.architecture import parse_architecture
from cohort.domain.weights import TensorSignature, decode, load_into, trainable_state
from cohort.federated.simulator import SimulationResult, simulate
from cohort.federated.training import accuracy
from cohort.local.accounts import create_confirmed_user
from cohort.local.outbox import Outbox
from cohort.local.platform import LocalPlatform
from cohort.sdk import CohortClient, sign_in

SMALL_CNN = {
    "input_shape": list(digits.IMAGE_SHAPE),
    "num_classes": digits.NUM_CLASSES,
    "layers": [
        {"type": "Conv2d", "in_channels": 1, "out_channels": 16, "kernel_size": 3, "padding": 1},
        {"type": "ReLU"},
        {"type": "MaxPool2d", "kernel_size": 2},
        {"type": "Conv2d", "in_channels": 16, "out_channels": 32, "kernel_size": 3, "padding": 1},
        {"type": "ReLU"},
        {"type": "Flatten"},
        {"type": "Linear", "in_features": 512, "out_features": 64},
        {"type": "ReLU"},
        {"type": "Linear", "in_features": 64, "out_features": 10},
    ],
}
DIGITS_SCHEMA = [
    *({"name": f"pixel_{i:02d}", "type": "int", "min": 0, "max": 16} for i in range(64)),
    {"name": "label", "type": "category", "choices": [str(d) for d in range(10)]},
]
CLIENT_CONFIG = {"batch_size": 16, "learning_rate": 0.05, "local_epochs": 4, "momentum": 0.9}
# Quick, yet enough to show a curve, the worst case and the gradient-masking checks.
# The default preset, the standard AutoAttack ensemble, read at the digits' standard budget (L∞ 0.1, L2
# 0.5); a short grid keeps the demo quick.
EVALUATION_SPEC = {
    "epsilons_linf": [0.0, 0.05, 0.1, 0.2],
    "epsilons_l2": [0.0, 0.5, 1.0],
    "samples": 200,
}


def _password() -> str:
    # Meets the pool's policy; random per run and never printed.
    return secrets.token_urlsafe(18) + "aA1!"


def run_demo(home: Path, num_devices: int = 10, rounds: int = 10, seed: int = 0) -> dict:
    started = time.monotonic()
    torch.manual_seed(seed)
    train, test = digits.load(seed=seed)
    with LocalPlatform(home) as platform:
        print(
            f"▶ local platform up: emulator {platform.emulator_url}, orchestrator {platform.orchestrator_url}"
        )
        website_url = platform.website_url
        pool, client_id = platform.user_pool_id, platform.user_pool_client_id
        scientist_password, developer_password = _password(), _password()
        create_confirmed_user(pool, client_id, "ada@example.org", scientist_password, Group.SCIENTISTS)
        create_confirmed_user(pool, client_id, "grace@example.org", developer_password, Group.APP_DEVELOPERS)
        print("▶ signed up and confirmed: scientist ada@example.org, app developer grace@example.org")

        developer = CohortClient(
            platform.orchestrator_url, sign_in(client_id, "grace@example.org", developer_password)
        )
        dataset = developer.register_dataset("digits-keyboard", DIGITS_SCHEMA)
        api_key = developer.create_api_key(dataset["dataset_id"])["api_key"]
        print(f"▶ app 'digits-keyboard' registered as dataset {dataset['dataset_id']}; API key issued")

        scientist = CohortClient(
            platform.orchestrator_url, sign_in(client_id, "ada@example.org", scientist_password)
        )
        # The dataset function generated the app's sample dataset from its schema meanwhile.
        sample = scientist.wait_for_sample(dataset["dataset_id"], timeout=60)
        sample_csv = home / f"sample-{dataset['dataset_id']}.csv"
        sample_csv.write_bytes(scientist.download_sample(dataset["dataset_id"]))
        print(
            f"▶ sample dataset {sample['status']}: {sample['rows']:,} rows x {len(DIGITS_SCHEMA)} attributes "
            f"(seed {sample['seed']}), downloaded to {sample_csv}"
        )

        spec = parse_architecture(SMALL_CNN)
        model = scientist.create_model("digits-cnn", SMALL_CNN, trainable_state(spec.build()))
        print(f"▶ model {model['model_id']} uploaded: {model['parameter_count']:,} parameters")

        server_config = {
            "rounds": rounds,
            "min_reports": max(1, num_devices * 8 // 10),
            "max_reports": num_devices,
            "round_deadline_seconds": 30,
        }
        job = scientist.start_training(
            model["model_id"],
            dataset["dataset_id"],
            CLIENT_CONFIG,
            server_config,
            evaluate_on_completion=EVALUATION_SPEC,
        )
        print(
            f"▶ training job {job['job_id']}: {rounds} rounds on {num_devices} simulated devices (non-IID), "
            "then a robustness evaluation of the trained model"
        )

        simulation: list[SimulationResult] = []
        devices = threading.Thread(
            target=lambda: simulation.append(
                simulate(platform.orchestrator_url, api_key, job["job_id"], train, num_devices, seed=seed)
            ),
            name="simulator",
        )
        devices.start()
        job = scientist.wait_for_job(job["job_id"], timeout=600)
        devices.join(timeout=60)
        if job["status"] != "completed":
            raise RuntimeError(f"training {job['status']}: {job['status_reason']}")

        trained = spec.build()
        load_into(
            trained, decode(scientist.download_trained_model(job["job_id"]), TensorSignature.of(trained))
        )
        test_accuracy = accuracy(trained, test)

        evaluation = scientist.wait_for_evaluation(job["evaluation_id"], timeout=300)
        if evaluation["status"] != "completed":
            raise RuntimeError(f"the evaluation {evaluation['status']}: {evaluation['status_reason']}")
        report = json.loads(scientist.download_report(evaluation["evaluation_id"], "json"))
        report_path = home / f"robustness-report-{evaluation['evaluation_id']}.html"
        report_path.write_bytes(scientist.download_report(evaluation["evaluation_id"], "html"))

        outbox = Outbox(Path(platform.outbox))
        outbox.wait_for(f"training-finished-{job['job_id']}", timeout=60)
        outbox.wait_for(f"evaluation-finished-{evaluation['evaluation_id']}", timeout=60)
        _print_outbox(outbox)

    seconds = time.monotonic() - started
    _print_summary(job, simulation[0] if simulation else None, test_accuracy, len(test))
    _print_robustness(report, report_path)
    _print_dashboard(website_url)
    return {
        "final_accuracy": round(test_accuracy, 4),
        "rounds": len(job["rounds"]),
        "devices": num_devices,
        "seconds": round(seconds, 1),
        "clean_accuracy": round(report["clean"]["accuracy"], 4),
        "robust_accuracy": round(report["headline"]["robust_accuracy"], 4),
    }


def _print_summary(
    job: dict, simulation: SimulationResult | None, test_accuracy: float, test_size: int
) -> None:
    print("\nround  reports  samples   loss    train acc")
    for r in job["rounds"]:
        retries = f"  ({len(r['failures'])} failed attempts)" if r["failures"] else ""
        metrics = f"{r['loss']:.4f}  {r['accuracy']:.4f}"
        print(f"{r['round']:>5}  {r['reports']:>7}  {r['samples']:>7}  {metrics}{retries}")
    if simulation is not None:
        trained = sum(s.rounds_trained for s in simulation.stats)
        print(
            f"\ndevices: {simulation.devices}, local trainings: {trained}, errors: {len(simulation.errors)}"
        )
        for error in simulation.errors:
            print(f"  device error: {error}")
    print(f"held-out test accuracy of the downloaded model: {test_accuracy:.4f} on {test_size} digits\n")


def _print_robustness(report: dict, path: Path) -> None:
    clean, headline = report["clean"], report["headline"]
    epsilon = headline["epsilon"]
    norm = {"linf": "L∞", "l2": "L2"}[headline["norm"]]
    print(
        f"robustness on {report['samples']} held-out digits "
        f"({report['device']}, {report['seconds']:.1f} s):\n"
        f"  clean accuracy     {clean['accuracy']:.4f}  (95% CI {clean['ci95']['low']:.4f} to "
        f"{clean['ci95']['high']:.4f})"
    )
    for point in report["curves"]:
        if point["norm"] == headline["norm"] and point["epsilon"] == epsilon:
            after = "after " if point["cumulative"] else ""
            print(
                f"  {after + point['attack']:<24} {point['robust_accuracy']:.4f}  at ε = {epsilon:g} ({norm})"
            )
    interval = headline["ci95"]
    print(
        f"  {'worst case (' + headline['preset'] + ')':<24} {headline['robust_accuracy']:.4f}  at ε = "
        f"{epsilon:g} ({norm}), 95% CI {interval['low']:.4f} to {interval['high']:.4f}"
    )
    for check in report["checks"]:
        mark = "✓" if check["passed"] else "⚠"
        print(f"  {mark} {check['title']}: {check['finding']}")
    if not headline["reliable"]:
        print(f"  the headline is NOT reliable: {headline['advice']}")
    print(f"report: {path}\n")


def _print_dashboard(website_url: str) -> None:
    if website_url:
        print(f"dashboard: served at {website_url} while the demo ran (stopped with it)")
    else:
        print("dashboard: not built, so not served (build it with 'make website')")
    print("'cohort up' keeps a local platform and its dashboard running until Ctrl-C\n")


def _print_outbox(outbox: Outbox) -> None:
    emails = sorted(outbox.folder.glob("*.eml"), key=lambda path: path.stat().st_mtime)
    print(f"▶ outbox {outbox.folder}: {len(emails)} emails, each an .eml file any mail client opens")
    for path in emails:
        with path.open("rb") as file:
            headers = BytesHeaderParser(policy=policy.default).parse(file)
        print(f"    {headers['To']:<20} {headers['Subject']:<34} {path.name}")


def main(home: Path) -> None:
    print(json.dumps(run_demo(home)))
