"""The dashboard in real headless Chromium against the local platform, as its users drive it.

An app developer signs up, registers an app and creates its API key; simulated devices run with
that key; a scientist signs up, uploads a model, starts training, watches the rounds arrive,
downloads the trained model, has it evaluated and reads the report. Every page visited is checked
by axe-core, and photographed for the README.
"""

from __future__ import annotations

import json
import os
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

import httpx
import pytest
import torch
from playwright.sync_api import Browser, BrowserContext, Page, expect

from cohort import aws
from cohort.catalogue import Group
from cohort.datasets import digits
from cohort.domain.architecture import parse_architecture
from cohort.domain.records import bind_tables
from cohort.domain.weights import TensorSignature, decode, encode, trainable_state
from cohort.federated.device_key import DeviceKey
from cohort.federated.simulator import simulate
from cohort.local.accounts import create_confirmed_user
from cohort.local.demo import SMALL_CNN
from cohort.local.platform import LocalPlatform, PlatformState
from cohort.sdk import CohortClient
from cohort.sdk import sign_in as sdk_sign_in
from cohort.settings import get_settings

from .browser import (
    CHROMIUM,
    WEBSITE,
    chromium,
    confirmation_code,
    expire_session,
    horizontal_overflow,
    screenshot,
    serious_accessibility_violations,
)

pytestmark = pytest.mark.browser

DIST = WEBSITE / "dist"
ONNX_EXPORTS = Path(__file__).resolve().parents[1] / "fixtures" / "onnx_exports"
CNN = SMALL_CNN  # the demo's: 38,282 parameters
LIVE = 90_000  # ms a live page may take to show what devices or the evaluator did


@dataclass
class Visits:
    """Every page checked by axe-core, with what it found."""

    violations: dict[str, list[str]] = field(default_factory=dict)
    overflow: dict[str, int] = field(default_factory=dict)

    def check(self, page: Page, name: str) -> None:
        page.wait_for_load_state("networkidle")
        self.violations[name] = serious_accessibility_violations(page)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformState]:
    """A platform serving the real build; the session's platform gets its environment back after."""
    if not (DIST / "index.html").exists():
        pytest.fail("the website is not built: run 'make website' (make test does)")
    if not CHROMIUM.exists():
        pytest.fail("Chromium is missing: apt-get install -y chromium (.ci/run does)")
    with (
        mock.patch.dict(os.environ),
        LocalPlatform(tmp_path_factory.mktemp("dashboard-home"), website_dir=DIST) as state,
    ):
        yield state
    aws.reset_clients()
    bind_tables(get_settings())


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def context(browser: Browser, tmp_path: Path) -> Iterator[BrowserContext]:
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    yield context
    context.close()


def open_page(context: BrowserContext) -> tuple[Page, list[str]]:
    """A page, and the console errors it logs (a CSP violation among them)."""
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    return page, errors


def sign_up(page: Page, site: PlatformState, role: str) -> tuple[str, str]:
    """Sign up with the form, confirm with the emailed code, sign in; returns email and password."""
    email = f"{role}-{uuid.uuid4().hex[:8]}@example.org"
    password = f"Pw-{uuid.uuid4().hex[:12]}A1"
    page.goto(f"{site.website_url}sign-up")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_label("a data scientist" if role == "scientist" else "an app developer").check()
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("heading", name="Confirm your email")).to_be_visible()
    page.get_by_label("Confirmation code").fill("000000")
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("alert")).to_contain_text("not the one we sent")
    page.get_by_label("Confirmation code").fill(confirmation_code(Path(site.outbox), email))
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    sign_in(page, site, email, password, navigate_first=False)
    return email, password


def sign_in(
    page: Page, site: PlatformState, email: str, password: str, *, navigate_first: bool = True
) -> None:
    if navigate_first:
        page.goto(f"{site.website_url}sign-in")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("navigation", name="Main").get_by_text(email)).to_be_visible()


def confirmed_user(site: PlatformState, group: Group) -> tuple[str, str]:
    """A user signed up and confirmed through the SDK's path, for tests about something else."""
    email = f"{group.value}-{uuid.uuid4().hex[:8]}@example.org"
    password = f"Pw-{uuid.uuid4().hex[:12]}A1"
    create_confirmed_user(site.user_pool_id, site.user_pool_client_id, email, password, group)
    return email, password


def navigate(page: Page, link: str) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name=link, exact=True).click()


def sign_out(page: Page) -> None:
    page.get_by_role("navigation", name="Main").get_by_text("@example.org").click()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_an_app_developer_and_a_scientist_use_the_dashboard_end_to_end(
    site: PlatformState, context: BrowserContext, tmp_path: Path
) -> None:
    visits = Visits()
    page, console_errors = open_page(context)

    # Given a visitor on the home page
    page.goto(site.website_url)
    expect(
        page.get_by_role("heading", name="Federated learning on the devices that hold the data")
    ).to_be_visible()
    visits.check(page, "home")

    # When an app developer signs up and registers an app whose schema has a mistake
    developer = sign_up(page, site, "app_developer")
    # (the session lives in this tab's sessionStorage, never in localStorage)
    stored = page.evaluate("[Object.keys(localStorage), Object.keys(sessionStorage)]")
    assert stored[0] == []
    assert any(key.endswith(".idToken") for key in stored[1])
    navigate(page, "Register an app")
    page.get_by_label("App name").fill("keyboard-e2e")
    attribute = page.get_by_role("group", name="attribute 1")
    attribute.get_by_label("Minimum").fill("16")
    attribute.get_by_label("Maximum").fill("0")
    attribute.get_by_label("Name").fill("pixel_mean")  # the group takes the attribute's name from here on
    page.get_by_role("button", name="Add an attribute").click()
    label = page.get_by_role("group", name="attribute 2")
    label.get_by_label("Type").select_option("category")
    label.get_by_label("Choices").fill("0\n1\n2\n3\n4\n5\n6\n7\n8\n9")
    label.get_by_label("Name").fill("label")
    page.get_by_role("button", name="Register the app").click()

    # Then the API's refusal is shown beside the attribute it concerns, and nothing is registered
    expect(page.get_by_role("group", name="pixel_mean")).to_contain_text("min 16 > max 0")
    screenshot(page, "schema-editor")
    visits.check(page, "schema editor with an error")

    # When the mistake is fixed
    page.get_by_role("group", name="pixel_mean").get_by_label("Maximum").fill("32")
    page.get_by_role("button", name="Register the app").click()

    # Then the dataset's page shows its schema and, once generated, the sample's first rows
    expect(page.get_by_role("heading", name="keyboard-e2e")).to_be_visible()
    preview = page.get_by_role("region", name=re.compile("First \\d+ rows of the sample"))
    expect(preview).to_be_visible(timeout=LIVE)
    expect(preview.locator("th")).to_have_text(["pixel_mean", "label"])
    with page.expect_download() as csv:
        page.get_by_role("button", name="Download CSV").click()
    assert csv.value.suggested_filename.endswith(".csv")
    assert csv.value.path().read_text().startswith('"pixel_mean","label"')

    # When the developer creates an API key
    page.get_by_role("button", name="Create an API key").click()
    api_key = page.get_by_label("New API key").inner_text()
    assert api_key.startswith("ck_")
    expect(page.get_by_text("it is shown once")).to_be_visible()
    visits.check(page, "dataset with its API key")

    # And a second key, which they revoke: it is marked so, and gets devices no token
    page.get_by_role("button", name="I have stored it").click()
    page.get_by_role("button", name="Create an API key").click()
    leaked = page.get_by_label("New API key").inner_text()
    page.get_by_role("button", name="I have stored it").click()
    keys = page.get_by_role("region", name="API keys")
    expect(keys.get_by_role("row")).to_have_count(3)
    keys.get_by_role("button", name="Revoke…").first.click()
    keys.get_by_role("button", name=re.compile("^Revoke [0-9a-f]{12}$")).click()
    expect(keys.get_by_text("revoked")).to_have_count(1)
    phone = DeviceKey.generate()

    def exchange(key: str) -> int:
        body = {
            "api_key": key,
            "device_id": "phone-1",
            "public_key": phone.public_key.model_dump(),
            "assertion": phone.assertion("phone-1"),
        }
        return httpx.post(f"{site.orchestrator_url}/v1/devices/token", json=body).status_code

    assert exchange(leaked) == 401
    assert exchange(api_key) == 200
    dataset_url = page.url
    sign_out(page)

    # And a scientist signs up, browses the datasets and uploads a model
    sign_up(page, site, "scientist")
    navigate(page, "Datasets")
    expect(page.get_by_role("link", name="keyboard-e2e")).to_be_visible()
    visits.check(page, "datasets")
    navigate(page, "Models")
    visits.check(page, "models, empty")
    page.get_by_role("button", name="New model").click()
    page.get_by_label("Name").fill("digits-cnn")
    page.get_by_label("Architecture (JSON)").fill(json.dumps(CNN, indent=2))
    torch.manual_seed(0)
    weights = tmp_path / "digits-cnn.safetensors"
    weights.write_bytes(encode(trainable_state(parse_architecture(CNN).build())))
    page.get_by_label("Initial weights (.safetensors)").set_input_files(str(weights))
    visits.check(page, "new model")
    page.get_by_role("button", name="Create the model").click()
    expect(page.get_by_role("heading", name="digits-cnn")).to_be_visible()
    expect(page.get_by_text("parameters")).to_contain_text("38,282")

    # When they ask for training with a quorum larger than the round admits
    page.get_by_role("button", name="Train it").click()
    page.get_by_label("App (dataset)").select_option(label="keyboard-e2e")
    page.get_by_label("Rounds").fill("3")
    page.get_by_label("Min Reports").fill("5")
    page.get_by_label("Max Reports").fill("3")
    page.get_by_role("button", name="Start training").click()

    # Then the API's reason is shown in plain words, at the server config
    expect(page.get_by_role("group", name="On the FL node (server config)")).to_contain_text(
        "min_reports (5) exceeds max_reports (3)"
    )
    screenshot(page, "training-form")
    visits.check(page, "training form with an error")

    # And the form offers the bounds on what one device may do, with the API's defaults
    bounds = page.get_by_role("group", name="Against bad devices (server config)")
    expect(bounds.get_by_label("Max Update Norm")).to_have_attribute("placeholder", re.compile("1000"))
    expect(bounds.get_by_label("Max Report Share")).to_have_attribute("placeholder", re.compile("0.2"))

    # When it is corrected and started, and the app's devices come online
    page.get_by_label("Min Reports").fill("2")
    page.get_by_label("Round Deadline Seconds").fill("30")
    page.get_by_label("Local Epochs").fill("4")
    page.get_by_label("Batch Size").fill("16")
    page.get_by_label("Momentum").fill("0.9")
    page.get_by_role("button", name="Start training").click()
    expect(page.get_by_role("heading", name=re.compile("Training job"))).to_be_visible(timeout=LIVE)
    job_id = page.url.rstrip("/").split("/")[-1]
    # The job's page says how its FL node is doing while it starts and runs
    node_health = page.get_by_text(re.compile(r"FL node: (waiting|launching|booting|healthy)"))
    expect(node_health).to_be_visible(timeout=LIVE)
    train, _ = digits.load(seed=0)
    devices = threading.Thread(
        target=simulate,
        args=(site.orchestrator_url, api_key, job_id, train, 3),
        kwargs={"seed": 0},
        daemon=True,
    )
    devices.start()

    # Then the job's page shows the rounds as they close, with their curves, until it completes
    rounds = page.get_by_role("region", name="Rounds")
    expect(rounds.get_by_role("row")).to_have_count(4, timeout=LIVE)  # a header and three rounds
    expect(page.get_by_role("heading", name=re.compile("completed"))).to_be_visible(timeout=LIVE)
    expect(page.get_by_role("img", name="Training accuracy per round")).to_be_visible()
    screenshot(page, "job")
    visits.check(page, "job")
    devices.join(timeout=60)

    # And the trained model downloads as safetensors the platform's format accepts
    with page.expect_download() as trained:
        page.get_by_role("button", name="Download the trained model").click()
    model = parse_architecture(CNN).build()
    decode(trained.value.path().read_bytes(), TensorSignature.of(model))

    # When they evaluate the trained model's robustness
    page.get_by_role("button", name="Evaluate the trained model").click()
    # (the standard AutoAttack preset is the default; two quick attacks keep the test short)
    expect(page.get_by_role("radio", name=re.compile("^autoattack"))).to_be_checked()
    page.get_by_role("radio", name=re.compile("^custom")).check()
    _uncheck_attacks(page, "PGD L2", "APGD-CE")
    page.get_by_label("L∞ budgets").fill("0, 0.05, 0.1")
    page.get_by_label("Samples").fill("60")
    page.get_by_role("spinbutton", name="Steps").fill("5")
    visits.check(page, "new evaluation")
    page.get_by_role("button", name="Queue the evaluation").click()

    # Then its progress shows, and then its report: the headline with its interval and the attacks
    # behind it, the checks that ran, the curves with the worst case, per-class results, the manifest
    expect(page.get_by_role("heading", name="Report")).to_be_visible(timeout=LIVE)
    expect(page.get_by_text("clean accuracy")).to_be_visible()
    expect(
        page.get_by_text(re.compile(r"^95% CI .* the worst case per sample of FGSM and PGD, custom preset"))
    ).to_be_visible()
    expect(page.get_by_text("This is not the standard AutoAttack evaluation")).to_be_visible()
    expect(page.get_by_role("heading", name=re.compile("^Gradient-masking checks: "))).to_be_visible()
    expect(page.get_by_role("img", name=re.compile("Robust accuracy against ε"))).to_be_visible()
    curve = page.get_by_role("region", name="Robust accuracy per attack and ε")
    expect(curve.get_by_role("row", name=re.compile("^worst case of FGSM and PGD L∞ 0.1 "))).to_be_visible()
    expect(page.get_by_role("region", name="Accuracy per class").get_by_role("row")).to_have_count(11)
    expect(page.get_by_role("region", name="Attacks as they ran").get_by_role("row")).to_have_count(3)
    screenshot(page, "evaluation")
    visits.check(page, "evaluation report")
    with page.expect_download() as report:
        page.get_by_role("button", name="Download HTML report").click()
    assert "<h1>Robustness of digits-cnn</h1>" in report.value.path().read_text()
    with page.expect_download() as samples:
        page.get_by_role("button", name="Download per-sample CSV").click()
    assert len(samples.value.path().read_text().splitlines()) == 1 + 60  # a header and a row per sample

    # And the app developer sees, on their app's page, the job that ran on its devices
    sign_out(page)
    sign_in(page, site, *developer)
    page.goto(dataset_url)
    jobs = page.get_by_role("region", name="Training jobs on this app")
    expect(jobs.get_by_role("row").nth(1)).to_contain_text(job_id[:8])
    expect(jobs.get_by_role("row").nth(1)).to_contain_text("completed")
    screenshot(page, "dataset")
    visits.check(page, "dataset with its job")

    # Every page visited had no serious accessibility violation, and none broke the page's CSP
    assert {name: found for name, found in visits.violations.items() if found} == {}
    assert [error for error in console_errors if "Content Security Policy" in error] == []


def test_a_scientist_never_sees_another_scientist_s_models_or_jobs(
    site: PlatformState, context: BrowserContext
) -> None:
    # Given scientist A with a model and a training job
    a_email, a_password = confirmed_user(site, Group.SCIENTISTS)
    a = CohortClient(site.orchestrator_url, sdk_sign_in(site.user_pool_client_id, a_email, a_password))
    developer = CohortClient(
        site.orchestrator_url,
        sdk_sign_in(site.user_pool_client_id, *confirmed_user(site, Group.APP_DEVELOPERS)),
    )
    dataset = developer.register_dataset(
        "isolation-app", [{"name": "x", "type": "float", "min": 0, "max": 1}]
    )
    model = a.create_model("a-secret-model", CNN, trainable_state(parse_architecture(CNN).build()))
    job = a.start_training(
        model["model_id"],
        dataset["dataset_id"],
        {},
        {"rounds": 1, "round_deadline_seconds": 5, "max_round_attempts": 1},
    )

    # When scientist B signs in
    page, _ = open_page(context)
    sign_in(page, site, *confirmed_user(site, Group.SCIENTISTS))

    # Then B's models and jobs are empty, and A's pages, even by their address, show nothing of A's
    navigate(page, "Models")
    expect(page.get_by_text("You have no models yet")).to_be_visible()
    navigate(page, "Training")
    expect(page.get_by_text("No training yet")).to_be_visible()
    page.goto(f"{site.website_url}models/{model['model_id']}")
    expect(page.get_by_role("alert")).to_contain_text(f"no model {model['model_id']}")
    page.goto(f"{site.website_url}jobs/{job['job_id']}")
    expect(page.get_by_role("alert")).to_contain_text(f"no training job {job['job_id']}")
    assert "a-secret-model" not in page.content()


def test_an_expired_session_asks_to_sign_in_again_and_keeps_what_was_typed(
    site: PlatformState, context: BrowserContext
) -> None:
    # Given an app developer half-way through registering an app
    email, password = confirmed_user(site, Group.APP_DEVELOPERS)
    page, _ = open_page(context)
    sign_in(page, site, email, password)
    navigate(page, "Register an app")
    page.get_by_label("App name").fill("typed-before-expiry")
    page.get_by_label("Minimum").fill("0")
    page.get_by_label("Maximum").fill("5")
    page.get_by_label("Name", exact=True).fill("battery_hours")

    # When their session ends (tokens expired, refresh token revoked) and they submit
    expire_session(page)
    page.get_by_role("button", name="Register the app").click()

    # Then a dialog asks for the password, over the form, which still holds what was typed
    dialog = page.get_by_role("dialog", name="Your session has ended")
    expect(dialog).to_be_visible()
    screenshot(page, "session-expired", full_page=False)  # a modal covers the window, not the page
    expect(page.get_by_label("App name")).to_have_value("typed-before-expiry")

    # And once they sign in again, the request is sent with what they typed
    dialog.get_by_label("Password").fill("not-the-password")
    dialog.get_by_role("button", name="Sign in").click()
    expect(dialog.get_by_role("alert")).to_contain_text("The email or password is wrong")
    dialog.get_by_label("Password").fill(password)
    dialog.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="typed-before-expiry")).to_be_visible(timeout=LIVE)
    expect(page.get_by_role("region", name="Attributes of the schema")).to_contain_text("battery_hours")


@pytest.mark.parametrize("width", [390])
def test_every_page_fits_a_phone_and_passes_axe(site: PlatformState, browser: Browser, width: int) -> None:
    # Given a scientist with a model, on a phone-sized screen
    email, password = confirmed_user(site, Group.SCIENTISTS)
    scientist = CohortClient(site.orchestrator_url, sdk_sign_in(site.user_pool_client_id, email, password))
    model = scientist.create_model("phone-cnn", CNN, trainable_state(parse_architecture(CNN).build()))
    context = browser.new_context(viewport={"width": width, "height": 844}, is_mobile=True, has_touch=True)
    context.set_default_timeout(20_000)
    page, _ = open_page(context)
    visits = Visits()
    try:
        # When they visit each page, signed out and in
        for path, heading in (
            ("sign-in", "Sign in"),
            ("sign-up", "Create your account"),
            ("confirm", "Confirm your email"),
        ):
            page.goto(f"{site.website_url}{path}")
            expect(page.get_by_role("heading", name=heading)).to_be_visible()
            visits.check(page, path)
            visits.overflow[path] = horizontal_overflow(page)
        sign_in(page, site, email, password)
        for path, heading in (
            ("", "Your work"),
            ("datasets", "Datasets"),
            ("models", "Models"),
            (f"models/{model['model_id']}", "phone-cnn"),
            ("models/new", "New model"),
            ("models/import", "Import an ONNX model"),
            ("jobs", "Training"),
            ("jobs/new", "Start training"),
            ("evaluations", "Robustness evaluations"),
            ("evaluations/new", "Evaluate robustness"),
        ):
            page.goto(f"{site.website_url}{path}")
            expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
            visits.check(page, path or "home")
            visits.overflow[path or "home"] = horizontal_overflow(page)
            if path == "jobs/new":
                screenshot(page, "phone-training-form")

        # Then none is wider than the phone, and axe finds no serious violation on any
        assert {name: pixels for name, pixels in visits.overflow.items() if pixels > 0} == {}
        assert {name: found for name, found in visits.violations.items() if found} == {}
    finally:
        context.close()


def test_a_scientist_imports_an_onnx_model_and_evaluates_it_on_their_own_evaluation_set(
    site: PlatformState, context: BrowserContext, tmp_path: Path
) -> None:
    # Given a signed-in scientist with a PyTorch model exported to ONNX
    page, _ = open_page(context)
    sign_in(page, site, *confirmed_user(site, Group.SCIENTISTS))

    # When they import it through the dashboard
    navigate(page, "Models")
    page.get_by_role("button", name="Import ONNX").click()
    page.get_by_label("Name").fill("torch-mlp")
    page.get_by_label("ONNX file").set_input_files(str(ONNX_EXPORTS / "torch_mlp.onnx"))
    page.get_by_role("button", name="Import").click()

    # Then the model page shows the architecture the import made of it
    expect(page.get_by_role("heading", name="torch-mlp")).to_be_visible(timeout=LIVE)
    expect(page.get_by_role("region", name="Layers")).to_contain_text("Linear")
    expect(page.get_by_text("imported from ONNX")).to_be_visible()

    # When they evaluate it on an evaluation set of their own, uploaded from the page
    _, test = digits.load(seed=0)
    evaluation_set = tmp_path / "my-digits.safetensors"
    evaluation_set.write_bytes(encode({"inputs": test.inputs[:40], "labels": test.labels[:40]}))
    page.get_by_role("button", name="Evaluate its robustness").click()
    page.get_by_role("radio", name=re.compile("^custom")).check()
    _uncheck_attacks(page, "PGD L2", "APGD-CE", "PGD")
    page.get_by_label("L∞ budgets").fill("0, 0.1")
    page.get_by_label("Samples").fill("40")
    page.get_by_label("my own").check()
    page.get_by_label("Evaluation set file").set_input_files(str(evaluation_set))
    page.get_by_role("button", name="Queue the evaluation").click()

    # Then the report is of those 40 samples
    expect(page.get_by_role("heading", name="Report")).to_be_visible(timeout=LIVE)
    expect(page.get_by_text("of your evaluation set")).to_be_visible()
    expect(page.get_by_text(re.compile(r"; \d+ of 40$"))).to_be_visible()


def _uncheck_attacks(page: Page, *labels: str) -> None:
    """Untick attacks on the evaluation form by label: "PGD" is PGD (L∞), not PGD L2."""
    for label in labels:
        page.get_by_role("checkbox", name=re.compile(rf"^{re.escape(label)} \(")).uncheck()


def test_the_dashboard_works_from_the_keyboard(site: PlatformState, context: BrowserContext) -> None:
    # Given a visitor on the sign-in page who uses only the keyboard
    email, password = confirmed_user(site, Group.APP_DEVELOPERS)
    page, _ = open_page(context)
    page.goto(f"{site.website_url}sign-in")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()

    # When they tab to the skip link and follow it
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "content"

    # And tab through the form's labelled fields, typing, and press Enter
    while page.evaluate("document.activeElement.name") != "email":
        page.keyboard.press("Tab")
    page.keyboard.type(email)
    page.keyboard.press("Tab")
    page.keyboard.type(password)
    page.keyboard.press("Enter")

    # Then they are signed in, and the menu opens from the keyboard too
    menu = page.get_by_role("navigation", name="Main").get_by_text(email)
    expect(menu).to_be_visible()
    menu.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
