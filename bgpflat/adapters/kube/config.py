"""Which cluster to talk to and with which credentials, decided the way kubectl decides it.

``--kubeconfig``, then the merged ``$KUBECONFIG`` list, then ``~/.kube/config``, then the
in-cluster service account; every way this can fail is one ``KubeError`` line naming the file
and the fix. ``Target`` is how a command names the cluster it talks to.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bgpflat.errors import KubeError


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """Which cluster a command talks to, as the user would recognise it."""

    context: str
    server: str
    user: str = ""


def new_configuration() -> Any:
    """A client configuration without urllib3's hidden retries: each request is one attempt within
    ``REQUEST_TIMEOUT``, so a wedged server costs one timeout (not four) and every retry bgpflat
    makes is its own, bounded and visible (429 Retry-After, re-reads after a 409 or a failed write)."""
    from kubernetes import client

    configuration = client.Configuration()
    configuration.retries = False
    return configuration


# Credentials embedded in a kubeconfig (client-key-data and friends) must reach urllib3 as file
# names. The kubernetes package writes them to files in the temporary directory and removes them
# only at a clean exit, so a SIGTERM or SIGKILL left a copy of the client key behind. Here they are
# written into a private directory that is removed as soon as the kubeconfig is loaded, and kept
# in memory-only files (memfd) instead: /proc/self/fd/N names them for as long as bgpflat runs,
# and they go with the process however it ends.
_MEMORY_FILES: dict[bytes, str] = {}


@contextlib.contextmanager
def _credentials_in_memory(configuration: Any) -> Iterator[str]:
    """Yields the private directory for the kubernetes package's files; moves what it wrote there
    into memory files and removes the directory, whatever happens."""
    private = tempfile.mkdtemp(prefix="bgpflat-kube-")  # mode 0700
    try:
        yield private
        for attribute in ("key_file", "cert_file", "ssl_ca_cert"):
            name = getattr(configuration, attribute, None)
            if isinstance(name, str) and os.path.dirname(name) == private:
                setattr(configuration, attribute, _memory_file(Path(name).read_bytes()))
    finally:
        shutil.rmtree(private, ignore_errors=True)
        _forget_files_in(private)


def _memory_file(content: bytes) -> str:
    found = _MEMORY_FILES.get(content)
    if found is None:
        fd = os.memfd_create("bgpflat-credential", os.MFD_CLOEXEC)
        os.write(fd, content)
        found = _MEMORY_FILES[content] = f"/proc/self/fd/{fd}"
    return found


def _forget_files_in(directory: str) -> None:
    """The kubernetes package remembers the files it wrote by content and hands the same name out
    again on the next load: forget the ones just removed."""
    from kubernetes.config import kube_config

    remembered: dict[str, str] = getattr(kube_config, "_temp_files", {})
    for key, name in list(remembered.items()):
        if os.path.dirname(name) == directory:
            del remembered[key]


def load_configuration(*, kubeconfig: str | None, context: str | None) -> tuple[Any, Target]:
    from kubernetes import config
    from kubernetes.config.config_exception import ConfigException

    # The kubernetes config helpers are untyped; give them one typed name each.
    list_contexts: Any = config.list_kube_config_contexts
    load_kube_config: Any = config.load_kube_config
    load_incluster_config: Any = config.load_incluster_config

    configuration = new_configuration()
    # Read at call time: the kubernetes package captures $KUBECONFIG when it is first imported.
    path = kubeconfig or os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    has_file = kubeconfig is not None or any(os.path.exists(os.path.expanduser(p)) for p in path.split(os.pathsep) if p)
    if kubeconfig is not None and not os.path.exists(kubeconfig):
        # The kubernetes package says "Invalid kube-config file. No configuration found." here.
        raise KubeError(f"kubeconfig {kubeconfig}: no such file (fix: check the path)")
    if has_file:
        import yaml

        try:
            contexts, active = list_contexts(config_file=path)
            chosen = context or (active or {}).get("name")
            entry = next((c for c in contexts if c.get("name") == chosen), None)
            if entry is None:
                names = ", ".join(sorted(c.get("name", "") for c in contexts)) or "none"
                raise KubeError(f"kubeconfig {path}: no context {chosen!r} (fix: pass --context with one of: {names})")
            with _credentials_in_memory(configuration) as private:
                load_kube_config(
                    config_file=path,
                    context=chosen,
                    client_configuration=configuration,
                    persist_config=False,
                    temp_file_path=private,
                )
        except ConfigException as exc:
            raise KubeError(f"kubeconfig {path}: {exc} (fix: pass --kubeconfig FILE or --context NAME)") from None
        except OSError as exc:
            raise KubeError(f"kubeconfig {path}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            # With a merged $KUBECONFIG list, the mark names the one file that is broken.
            name = getattr(mark, "name", None) or path
            where = f"{name}:{mark.line + 1}" if mark is not None else path
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise KubeError(f"kubeconfig {where}: invalid YAML: {problem}") from None
        except (TypeError, AttributeError, KeyError, ValueError):
            # The kubernetes package indexes into whatever YAML it loaded and fails with these
            # when the file is a list, a scalar or has sections of the wrong shape.
            raise KubeError(
                f"kubeconfig {path}: not a kubeconfig (fix: give a file with clusters, contexts and users, "
                "as `kubectl config view --raw` prints)"
            ) from None
        user = str((entry.get("context") or {}).get("user") or "")
        return configuration, Target(context=str(chosen), server=str(configuration.host), user=user)
    if context:
        raise KubeError(f"--context {context} given but there is no kubeconfig ({path} does not exist)")
    try:
        load_incluster_config(client_configuration=configuration)
    except ConfigException:
        raise KubeError(
            f"no kubeconfig ({path} does not exist) and not running inside a cluster "
            "(fix: pass --kubeconfig FILE or set KUBECONFIG)"
        ) from None
    return configuration, Target(context="in-cluster", server=str(configuration.host))


def certificate_configuration(
    *, server: str, ca_cert: str, client_cert: str, client_key: str, context: str
) -> tuple[Any, Target]:
    """Credentials given as files (a lab's own API server, before any kubeconfig exists)."""

    configuration = new_configuration()
    configuration.host = server
    configuration.ssl_ca_cert = ca_cert
    configuration.cert_file = client_cert
    configuration.key_file = client_key
    return configuration, Target(context=context, server=server)
