"""JupyterHub for Cohort: Cognito sign-in, then one JupyterLab per user with the Cohort SDK.

Every setting comes from the task's environment. OAUTH_CLIENT_SECRET is injected by ECS
from Secrets Manager; it is never logged and never reaches a notebook.
"""

import ctypes
import os
import secrets

# Each user's notebooks live in a directory of their own below this root.
NOTEBOOK_ROOT = "/home/cohort/notebooks"
# The hub's private working files (only the proxy's pid file; nothing else goes to disk).
HUB_STATE_DIR = "/home/cohort/.jupyterhub"
PORT = 8000

# Forwarded to notebooks when set, so boto3 there finds the region and the task role's
# credentials. The task role may only read the samples bucket.
_AWS_PASSTHROUGH = ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")

_PR_SET_DUMPABLE = 4  # from <linux/prctl.h>


class SettingError(RuntimeError):
    """A required environment variable is unset, empty or malformed."""


def _require(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise SettingError(f"jupyterhub_config: environment variable {name} is required but not set")
    return value


def _hide_hub_process() -> None:
    """Keep notebook code out of the hub's /proc entries (environ, memory).

    Notebooks run as the hub's own Unix user, so by default they could read the hub's
    initial environment, which holds the OAuth client secret. A non-dumpable process's
    /proc entries belong to root; children regain the default when they exec.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl(PR_SET_DUMPABLE, 0) failed: {os.strerror(errno)}")


cognito_domain = _require("COGNITO_DOMAIN").rstrip("/")
if not cognito_domain.startswith("https://"):
    raise SettingError(
        f"jupyterhub_config: COGNITO_DOMAIN must be the hosted UI's https:// base URL, got {cognito_domain!r}"
    )
client_id = _require("OAUTH_CLIENT_ID")
client_secret = _require("OAUTH_CLIENT_SECRET")
callback_url = _require("OAUTH_CALLBACK_URL")
notebook_env = {
    "COHORT_API_URL": _require("COHORT_API_URL"),
    "COHORT_SAMPLES_BUCKET": _require("COHORT_SAMPLES_BUCKET"),
    **{name: os.environ[name] for name in _AWS_PASSTHROUGH if name in os.environ},
}

# The proxy is started later with a copy of os.environ, and its /proc entries stay readable
# by notebooks: drop the secret from the environment before that happens.
del os.environ["OAUTH_CLIENT_SECRET"]
_hide_hub_process()

c = get_config()  # type: ignore[name-defined]  # noqa: F821 - provided by JupyterHub when it loads this file

# -- Network: the load balancer sends plain HTTP to the proxy on PORT ------------------------
c.JupyterHub.bind_url = f"http://0.0.0.0:{PORT}"
c.ConfigurableHTTPProxy.pid_file = f"{HUB_STATE_DIR}/proxy.pid"

# -- State: one task, whose notebook servers die with it, so nothing is worth persisting.
# Kept in memory, the token table and the cookie key are out of the notebooks' reach.
c.JupyterHub.db_url = "sqlite:///:memory:"
c.JupyterHub.cookie_secret = secrets.token_bytes(32)

# -- Sign-in: the Cognito hosted UI, by the OAuth 2.0 authorization-code flow ---------------
c.JupyterHub.authenticator_class = "generic-oauth"
c.GenericOAuthenticator.login_service = "Cohort"
c.GenericOAuthenticator.client_id = client_id
c.GenericOAuthenticator.client_secret = client_secret
c.GenericOAuthenticator.oauth_callback_url = callback_url
c.GenericOAuthenticator.authorize_url = f"{cognito_domain}/oauth2/authorize"
c.GenericOAuthenticator.token_url = f"{cognito_domain}/oauth2/token"
c.GenericOAuthenticator.userdata_url = f"{cognito_domain}/oauth2/userInfo"
c.GenericOAuthenticator.scope = ["openid", "email", "profile"]
c.GenericOAuthenticator.username_claim = "email"
# Only users of Cohort's own pool can pass the hosted UI, and each of them may use the hub.
c.GenericOAuthenticator.allow_all = True
# A username becomes a directory name below NOTEBOOK_ROOT: no separators, so no way out of it.
c.GenericOAuthenticator.username_pattern = r"^[^/\\\s]+@[^/\\\s]+$"

# -- Notebooks: a local process per user, under the hub's own unprivileged user -------------
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = f"{NOTEBOOK_ROOT}/{{username}}"
c.Spawner.default_url = "/lab"
c.Spawner.environment = notebook_env
