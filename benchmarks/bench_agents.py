"""Real agents in luzia: what each costs in the image, and from dispatch to its first answer.

    python benchmarks/bench_agents.py [--agents claude,codex,aider] [--backends local,docker]
                                      [--runs N] [--build-runs N] [--skip-build] [--json]

Two measures, each against a baseline taken in the same run, on the same machine and load:

- *Image build*: ``controllers.image.build_agent_image(tag, method="offline", agents=[...])``
  (what ``luzia image build --agent`` runs) with the pinned programs from
  ``tests.agent_bins.agent_program``: the base image alone (the baseline), the base with each
  agent, and with all of them. Wall time of the call (it includes the agents' ``--version``
  check in the new image) and the image's size. Throwaway tags ``luzia-bench-agents:<name>``,
  each removed before the next build, so every build starts from nothing of its own.
- *Dispatch -> first idle* (interactive): ``dispatch_task("write a.txt hi", agent=...)`` until
  the store's ``idle`` event "waiting at its prompt" (the task delivered, the turn done, the
  file written), against the built-in ``fake-agent`` doing the same (``edit a.txt: hi``, its
  spelling of it), configured as ``tests/test_interactive.py`` does. *Dispatch -> completed*
  (command mode, the agent's one-shot form), against a plain ``true`` command job. Each agent
  runs against its scripted model server (``tests/model_servers``) with exactly the
  environment and seeded HOME its conformance test (``tests/test_agent_<name>.py``) uses: on
  the host a HOME like a person's who has set the agent up and trusts the workspace, in a
  container the image holding the agents and the server at ``host.docker.internal``.
  Timed from just before ``dispatch_task`` to the event's own ``at`` in the store; an in-process
  engine, woken by the dispatch's datagram as ``luzia dispatch`` does.

Subjects alternate job by job (the order rotating every repetition), so a burst of load falls
on all alike; one untimed ``true`` job per backend warms the engine and Docker first. Every job,
container, network and image the script makes is removed at the end, also on Ctrl-C, SIGTERM or
an error; the results also go to ``benchmarks/results/agents-<time>.json`` (not committed).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _stats import (
    add_agent_options,
    chosen,
    close_dispatcher,
    ctrl_c_ignored,
    format_table,
    interrupt_on_signals,
    load_average,
    log,
    machine_facts,
    percentile,
    print_document,
    remove_labelled,
    report_head,
    scratch_home,
)

from luzia.agents import BUILTIN_PROFILES, AgentProfile, SeedContext
from luzia.agents.claude import KIND as CLAUDE
from luzia.config import Config
from luzia.dispatcher import ResponsiveDispatcher
from luzia.engine import Engine
from luzia.jobs import FINAL_STATES, Backend, JobEvent, JobState
from luzia.network import NETWORK_VAR

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(1, str(ROOT))  # tests/: the pinned agent programs and the scripted servers

from tests.agent_bins import VERSIONS, agent_program  # noqa: E402
from tests.model_servers import anthropic, openai_chat, openai_responses  # noqa: E402
from tests.model_servers.harness import Server  # noqa: E402
from tests.support import CLAUDE_KEY, claude_env, git_repo  # noqa: E402

AGENTS = ("claude", "codex", "aider")
BACKENDS: tuple[Backend, ...] = ("local", "docker")
TAG = "luzia-bench-agents:{}"
RESULTS = ROOT / "benchmarks" / "results"
TASK = "write a.txt hi"
TIMEOUT = 180.0
MiB = 1 << 20

FAKE_AGENT = ROOT / "examples" / "agents" / "fake-agent"
FAKE = dataclasses.replace(
    BUILTIN_PROFILES["fake-agent"], name="fake-bench", command="bash ./fake-agent", start_timeout=30
)
"""The baseline agent, as tests/test_interactive.py configures it: run from the workspace."""
FAKE_ENV = {"FAKE_AGENT_THINK": "0.2", "FAKE_AGENT_DROP_FAST_ENTER": "1"}

CODEX_MODEL = "gpt-5.5"
"""A model Codex 0.147 knows (tests/test_agent_codex.py): no model-migration question."""


class BenchError(Exception):
    """A job did not do what the benchmark relies on (failed, ended early, wrote nothing)."""


# --------------------------------------------------------------------------- the subjects


@dataclass
class Spec:
    """How one job is dispatched: its task, profile, mode, variables, and the caller's
    environment while ``dispatch_task`` runs (HOME, forwarded variables)."""

    task: str
    agent: str | None
    mode: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    environ: dict[str, str] = field(default_factory=dict)
    wrote: str | None = "a.txt"


def codex_config(base_url: str, trusted: str | None) -> str:
    """tests/test_agent_codex.py ``user_config``: Codex pointed at a proxy, unsandboxed."""
    trust = f'[projects."{trusted}"]\ntrust_level = "trusted"\n' if trusted else ""
    return (
        f'model = "{CODEX_MODEL}"\nmodel_provider = "scripted"\napproval_policy = "never"\n'
        'sandbox_mode = "danger-full-access"\ncheck_for_update_on_startup = false\n'
        f"{trust}"
        f'[model_providers.scripted]\nname = "scripted"\nbase_url = "{base_url}/v1"\n'
        'wire_api = "responses"\nenv_key = "OPENAI_API_KEY"\n'
    )


def aider_on_host() -> AgentProfile:
    """tests/test_agent_aider.py ``_on_host``: the built-in profile with the pinned aider."""
    program = agent_program("aider")

    def swap(command: str | None) -> str | None:
        return None if command is None else command.replace(" aider ", f" {program} ", 1)

    profile = BUILTIN_PROFILES["aider"]
    return dataclasses.replace(
        profile,
        name="aider-host",
        command=swap(profile.command) or "",
        exec_command=swap(profile.exec_command),
        start_timeout=30,
    )


class Subjects:
    """Each agent's (and baseline's) job, set up as its conformance test sets it up."""

    def __init__(self, servers: dict[str, Server]) -> None:
        self.servers = servers

    def spec(self, name: str, backend: Backend, mode: str, job_dir: Path, repo: Path) -> Spec:
        docker = backend == "docker"
        if name == "baseline":
            if mode == "command":
                return Spec("true", None, wrote=None)
            return Spec("edit a.txt: hi", FAKE.name, env=dict(FAKE_ENV))
        chosen = None if mode == "interactive" else "command"
        server = self.servers[name]
        url = server.container_url if docker else server.url
        if name == "claude":
            env = claude_env(url)
            if not docker:  # a person's HOME who set Claude Code up and trusts the repo
                home = job_dir / "person"
                home.mkdir()
                ctx = SeedContext(job_dir / "nobody", {"ANTHROPIC_API_KEY": CLAUDE_KEY}, str(repo))
                CLAUDE.seed_home(home, ctx)
                path = f"{agent_program('claude').parent}:{os.environ['PATH']}"
                env |= {"HOME": str(home), "PATH": path}
            return Spec(TASK, "claude", chosen, env)
        if name == "codex":
            user = job_dir / "user"
            (user / ".codex").mkdir(parents=True)
            if not docker:
                config = codex_config(url, str(repo))
                env = {
                    "PATH": f"{agent_program('codex').parent}:{os.environ['PATH']}",
                    "HOME": str(user),
                    "CODEX_HOME": str(user / ".codex"),
                    "OPENAI_API_KEY": "sk-test",
                }
                (user / ".codex" / "config.toml").write_text(config)
                return Spec(TASK, "codex", chosen, env)
            # in a container: the caller's HOME is what the job's agent HOME is seeded from
            env = {"OPENAI_API_KEY": "sk-test"}
            if mode == "interactive":
                config = codex_config(url, None)
            else:
                config = f'model = "{CODEX_MODEL}"\n'
                env["OPENAI_BASE_URL"] = url + "/v1"
            (user / ".codex" / "config.toml").write_text(config)
            return Spec(TASK, "codex", chosen, env, {"HOME": str(user)})
        # aider: its variables forwarded from the caller's environment
        environ = {
            "OPENAI_API_KEY": "scripted-key",
            "OPENAI_API_BASE": f"{url}/v1",
            "AIDER_MODEL": f"openai/{openai_chat.MODEL}",
        }
        if docker:
            return Spec(TASK, "aider", chosen, {}, environ)
        home = job_dir / "aider-home"
        home.mkdir()
        return Spec(TASK, "aider-host", chosen, {"HOME": str(home)}, environ)


@contextlib.contextmanager
def caller_environ(values: dict[str, str]) -> Iterator[None]:
    """``values`` in this process's environment while a job is dispatched, then as before."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# --------------------------------------------------------------------------- dispatch


@dataclass
class Sample:
    """One job, seconds from just before ``dispatch_task``."""

    running: float
    done: float


class Runner:
    """Dispatches one job at a time and reads its events from the store."""

    def __init__(self, d: ResponsiveDispatcher, subjects: Subjects, scratch: Path, image: str):
        self.d = d
        self.subjects = subjects
        self.scratch = scratch
        self.image = image
        self.count = 0

    def measure(self, name: str, backend: Backend, mode: str) -> Sample:
        self.count += 1
        job_dir = self.scratch / f"job-{self.count}-{name}-{backend}-{mode}"
        files = {"README": b"a project\n"}
        if name == "baseline":
            files["fake-agent"] = FAKE_AGENT.read_bytes()
        repo = git_repo(job_dir / "repo", files).resolve()
        spec = self.subjects.spec(name, backend, mode, job_dir, repo)
        image = self.image if backend == "docker" else None
        with caller_environ(spec.environ):
            started = time.time()
            job_id = self.d.dispatch_task(
                spec.task, workdir=repo, backend=backend, image=image, agent=spec.agent,
                mode=spec.mode, env=spec.env,  # type: ignore[arg-type]
            )  # fmt: skip
        try:
            running, done = self._wait(job_id, mode)
            if spec.wrote is not None:
                written = repo / spec.wrote
                if not written.exists() or written.read_text().strip() != "hi":
                    raise BenchError(f"{name} {backend} {mode}: {spec.wrote} not written")
        except BenchError as exc:
            tail = self.d.read_log(job_id, plain=True).decode(errors="replace")[-1500:]
            raise BenchError(f"{exc}\n--- the job's log, last lines ---\n{tail}") from None
        finally:
            self._remove(job_id)
        return Sample(running.at - started, done.at - started)

    def _wait(self, job_id: str, mode: str) -> tuple[JobEvent, JobEvent]:
        deadline = time.monotonic() + TIMEOUT
        seen: list[JobEvent] = []
        running: JobEvent | None = None
        while True:
            seen += self.d.store.events(job_id, after_seq=seen[-1].seq if seen else 0)
            for event in seen:
                if running is None and event.state is JobState.RUNNING:
                    running = event
                if mode == "interactive" and event.state is JobState.IDLE:
                    if "waiting at its prompt" not in event.reason:
                        raise BenchError(f"idle, but {event.reason}")
                    return running or event, event
                if event.state in FINAL_STATES:
                    if mode == "command" and event.state is JobState.COMPLETED:
                        return running or event, event
                    job = self.d.store.get(job_id)
                    raise BenchError(f"ended {job.state}: {job.message}")
            if time.monotonic() > deadline:
                raise BenchError(f"nothing within {TIMEOUT:g} s")
            time.sleep(0.02)  # not timed: the figure is the event's own time

    def _remove(self, job_id: str) -> None:
        """Kill (an interactive job), wait for its end, drop it with its container: untimed."""
        with contextlib.suppress(Exception):
            if not self.d.store.get(job_id).state.is_final:
                self.d.kill_job(job_id)
            self.d.wait_for_job(job_id, timeout=60)
        with contextlib.suppress(Exception):
            self.d.remove_job(job_id, force=True)


def dispatch_rounds(
    runner: Runner, agents: Sequence[str], backends: Sequence[Backend], runs: int
) -> dict[tuple[str, str, str], list[Sample]]:
    """``runs`` samples of every (subject, backend, mode), subjects alternating job by job."""
    samples: dict[tuple[str, str, str], list[Sample]] = {}
    for backend in backends:  # warm-up: the engine, the network, the image's first start
        runner.measure("baseline", backend, "command")
    subjects = ["baseline", *agents]
    for rep in range(runs):
        order = subjects[rep % len(subjects) :] + subjects[: rep % len(subjects)]
        for backend in backends:
            for mode in ("interactive", "command"):
                for name in order:
                    sample = runner.measure(name, backend, mode)
                    samples.setdefault((name, backend, mode), []).append(sample)
                    log(f"run {rep + 1}/{runs} {backend} {mode} {name}: "
                        f"running {sample.running:.2f} s, done {sample.done:.2f} s")  # fmt: skip
    return samples


# --------------------------------------------------------------------------- image builds


@dataclass
class Build:
    """One image variant's builds: wall seconds each and the image's size."""

    variant: str
    agents: list[str]
    seconds: list[float] = field(default_factory=list)
    size: int = 0


def remove_image(client: Any, tag: str) -> None:
    import docker.errors

    with contextlib.suppress(docker.errors.ImageNotFound):
        client.api.remove_image(tag)


def build_rounds(client: Any, agents: Sequence[str], runs: int, keep: str | None) -> list[Build]:
    """Each variant built ``runs`` times, the order rotating; all but ``keep`` removed."""
    from controllers.image import build_agent_image

    programs = {name: agent_program(name) for name in agents}
    variants = [Build("base", []), *(Build(name, [name]) for name in agents)]
    if len(agents) > 1:
        variants.append(Build("all", list(agents)))
    for rep in range(runs):
        order = variants[rep % len(variants) :] + variants[: rep % len(variants)]
        for build in order:
            tag = TAG.format(build.variant)
            remove_image(client, tag)  # a leftover of an interrupted run: never time a rebuild
            started = time.monotonic()
            result = build_agent_image(
                tag, method="offline", agents=[f"{n}={programs[n]}" for n in build.agents],
                client=client,
            )  # fmt: skip
            build.seconds.append(time.monotonic() - started)
            build.size = result.size_bytes
            log(f"build {rep + 1}/{runs} {build.variant}: {build.seconds[-1]:.1f} s, "
                f"{build.size / MiB:,.0f} MiB")  # fmt: skip
            if not (rep == runs - 1 and build.variant == keep):
                remove_image(client, tag)
    return variants


# --------------------------------------------------------------------------- report


def secs(value: float) -> str:
    return f"{value * 1e3:,.0f} ms" if value < 1 else f"{value:,.2f} s"


def build_table(builds: Sequence[Build]) -> list[list[str]]:
    base = builds[0]
    base_median = percentile(base.seconds, 0.5)
    rows = [["image (offline build)", "agents", "n", "p50", "min", "max", "size",
             "over base: time", "over base: size"]]  # fmt: skip
    for b in builds:
        median = percentile(b.seconds, 0.5)
        versions = ", ".join(f"{n} {VERSIONS[n]}" for n in b.agents) or "- (the baseline)"
        over = b is not base
        rows.append([
            TAG.format(b.variant), versions, str(len(b.seconds)), secs(median),
            secs(min(b.seconds)), secs(max(b.seconds)), f"{b.size / MiB:,.0f} MiB",
            f"+{secs(median - base_median)}" if over else "",
            f"+{(b.size - base.size) / MiB:,.0f} MiB" if over else "",
        ])  # fmt: skip
    return rows


def dispatch_table(
    samples: dict[tuple[str, str, str], list[Sample]],
    agents: Sequence[str],
    backends: Sequence[str],
) -> list[list[str]]:
    rows = [["what", "agent", "where", "n", "p50", "min", "max", "1st", "running p50",
             "baseline p50", "over baseline"]]  # fmt: skip
    for mode, what, base_name in (
        ("interactive", "dispatch -> first idle", "fake-agent"),
        ("command", "dispatch -> completed", "`true`"),
    ):
        for backend in backends:
            base = [s.done for s in samples[("baseline", backend, mode)]]
            base_p50 = percentile(base, 0.5)
            for name in ["baseline", *agents]:
                got = samples[(name, backend, mode)]
                done = [s.done for s in got]
                p50 = percentile(done, 0.5)
                is_base = name == "baseline"
                rows.append([
                    what, base_name + " (baseline)" if is_base else name, backend,
                    str(len(done)), secs(p50), secs(min(done)), secs(max(done)), secs(done[0]),
                    secs(percentile([s.running for s in got], 0.5)),
                    "" if is_base else secs(base_p50),
                    "" if is_base else f"+{secs(p50 - base_p50)} ({p50 / base_p50:,.1f}x)",
                ])  # fmt: skip
    return rows


def as_dicts(rows: list[list[str]]) -> list[dict[str, str]]:
    return [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]


# --------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    add_agent_options(parser, AGENTS, BACKENDS)
    parser.add_argument("--runs", type=int, default=5, help="jobs per agent, backend, mode (5)")
    parser.add_argument("--build-runs", type=int, default=2, help="builds per image (2)")
    parser.add_argument("--skip-build", action="store_true", help="no build timings")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead")
    args = parser.parse_args(argv)
    agents = chosen(parser, "agents", args.agents, AGENTS)
    backends = chosen(parser, "backends", args.backends, BACKENDS)
    if args.runs < 1 or args.build_runs < 1:
        parser.error("--runs and --build-runs must be positive")

    interrupt_on_signals()
    facts = machine_facts()
    started = time.monotonic()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    scratch, home = scratch_home("luzia-bench-agents-")
    network = f"luzia-bench-agents-{stamp}"
    os.environ[NETWORK_VAR] = network  # luzia's own network, this run's alone
    docker_wanted = "docker" in backends or not args.skip_build
    servers: dict[str, Server] = {}
    client: Any = None
    made_images: set[str] = set()
    dispatcher: ResponsiveDispatcher | None = None
    engine: Engine | None = None
    builds: list[Build] = []
    samples: dict[tuple[str, str, str], list[Sample]] = {}
    try:
        programs = {name: agent_program(name) for name in agents}  # fetched once, cached
        facts["agents"] = {name: f"{VERSIONS[name]} ({programs[name]})" for name in agents}
        if docker_wanted:
            from controllers.docker_engine import docker_client

            client = docker_client()
            facts["docker"] = client.version().get("Version", "?")
        image = ""
        if not args.skip_build:
            keep = ("all" if len(agents) > 1 else agents[0]) if "docker" in backends else None
            made_images |= {TAG.format(v) for v in ["base", *agents, "all"]}
            builds = build_rounds(client, agents, args.build_runs, keep)
            image = TAG.format(keep) if keep else ""
        elif "docker" in backends:  # the jobs' image, built untimed
            from controllers.image import build_agent_image

            image = TAG.format("all")
            made_images.add(image)
            remove_image(client, image)
            log(f"building {image} (not timed)")
            build_agent_image(image, method="offline", client=client,
                              agents=[f"{n}={p}" for n, p in programs.items()])  # fmt: skip
        facts["image"] = image or "-"
        servers = {"claude": anthropic.start(), "codex": openai_responses.start(),
                   "aider": openai_chat.start()}  # fmt: skip
        config = Config(agents={FAKE.name: FAKE, "aider-host": aider_on_host()})
        dispatcher = ResponsiveDispatcher(home=home, config=config)
        engine = dispatcher.start_background_monitor()
        runner = Runner(dispatcher, Subjects(servers), scratch, image)
        samples = dispatch_rounds(runner, agents, backends, args.runs)  # type: ignore[arg-type]
    except BenchError as exc:
        log(f"bench_agents: {exc}")
        return 1
    except KeyboardInterrupt:
        log("bench_agents: interrupted; removing this run's jobs, containers and images")
        return 130
    finally:
        with ctrl_c_ignored():
            if dispatcher is not None:
                close_dispatcher(dispatcher, engine)
            for server in servers.values():
                server.close()
            if client is not None:
                left = remove_labelled({"luzia.home": str(home)}, client, quiet=True)
                if left:
                    log(f"removed {left} container(s) left behind")
                for tag in made_images:
                    with contextlib.suppress(Exception):
                        remove_image(client, tag)
                for net in client.networks.list(names=[network]):
                    with contextlib.suppress(Exception):
                        net.remove()
            os.environ.pop(NETWORK_VAR, None)
            shutil.rmtree(scratch, ignore_errors=True)
    facts["load_end"] = load_average()
    facts["seconds"] = time.monotonic() - started
    tables = {
        "builds": build_table(builds) if builds else [],
        "dispatch": dispatch_table(samples, agents, backends),
    }
    raw = {f"{n} {b} {m}": [dataclasses.asdict(s) for s in v] for (n, b, m), v in samples.items()}
    document = {
        "benchmark": "agents", "machine": facts,
        "builds": [dataclasses.asdict(b) for b in builds],
        "build_rows": as_dicts(tables["builds"]) if builds else [],
        "dispatch_rows": as_dicts(tables["dispatch"]), "samples": raw,
    }  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"agents-{stamp}.json").write_text(json.dumps(document, indent=2) + "\n")
    if args.json:
        print_document("agents", facts, **{k: v for k, v in document.items() if k not in
                                           ("benchmark", "machine")})  # fmt: skip
        return 0
    head = f"runs {args.runs}, builds {0 if args.skip_build else args.build_runs} each"
    lines = report_head("luzia agents benchmark", facts, head)
    if builds:
        lines += [
            "",
            *format_table(tables["builds"]),
            "Wall time of build_agent_image (its --version check of each agent included);",
            "p50 nearest rank (of an even n, the upper middle). over base: p50 - the base's p50.",
        ]
    lines += [
        "", *format_table(tables["dispatch"]),
        "Times from just before dispatch_task to the store event's own time: first idle =",
        "'waiting at its prompt' after the task's turn (a.txt written); completed = command mode.",
        "1st = the first timed job of the row; running = the job's RUNNING event (tmux/container",
        "up, before the agent starts). Baselines: fake-agent (think 0.2 s) doing the same edit;",
        "a plain `true` job. Scripted model servers; p50 nearest rank.",
        f"results: {RESULTS.relative_to(ROOT)}/agents-{stamp}.json",
    ]  # fmt: skip
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
