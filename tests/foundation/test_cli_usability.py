"""The command line as a new user meets it: --version, global flags anywhere, --help with
defaults and names, `--attack` alone, derived settings scaled to small peer counts."""

from __future__ import annotations

import errno
import math
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from bdfl import cli
from bdfl.attacks import ATTACKS
from bdfl.config import COMMITTEE_SHARE, MAX_COMMITTEE, ExperimentConfig, dump_toml, load_config
from bdfl.errors import ConfigError
from bdfl.experiment.setup import defenses
from bdfl.net.overlay import KINDS

ROOT = Path(__file__).resolve().parents[2]


def _bdfl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bdfl", *args], cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_version() -> None:
    proc = _bdfl("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"bdfl {metadata.version('bdfl')}"


def test_debug_is_accepted_before_and_after_the_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    bad = ["--peers", "1", "--rounds", "1"]
    assert cli.main(["run", *bad]) == 2  # no --debug: one error line, exit 2
    assert "error: config field 'peers'" in capsys.readouterr().err
    for argv in (["--debug", "run", *bad], ["run", *bad, "--debug"], ["run", "--debug", *bad]):
        with pytest.raises(ConfigError):  # --debug: the traceback (the exception) comes through
            cli.main(argv)


def test_run_help_shows_defaults_and_every_name() -> None:
    proc = _bdfl("run", "--help")
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())  # help wraps lines
    d = ExperimentConfig()
    for expected in (f"(default: {d.peers})", f"(default: {d.rounds})", f"(default: {d.attack.name})",
                     f"(default: {d.defense.name})", f"(default: {d.overlay.topology})", f"(default: {d.seed})"):
        assert expected in text, expected
    for name in [*ATTACKS, *defenses(), *KINDS, "clients.digits", "clients.mnist"]:
        assert name in text, name
    devnet = " ".join(_bdfl("devnet", "--help").stdout.split())
    assert "(default: anvil)" in devnet and "(default: 10)" in devnet


def test_run_help_with_a_plugin_lists_what_it_registers() -> None:
    """`bdfl run --plugin M --help` loads M first: its attack, strategy and detector are among the
    names (without --plugin they are not; a plugin that cannot be imported is one error line)."""
    plugin = "experiments/plugins/example_plugin.py"
    for argv in (["run", "--plugin", plugin, "--help"], ["run", "--help", f"--plugin={plugin}"]):
        proc = _bdfl(*argv)
        assert proc.returncode == 0, proc.stderr
        text = " ".join(proc.stdout.split())
        for name in ("reverse_noise", "audited_trimmed", "negative_cosine"):
            assert name in text, (argv, name)
    plain = _bdfl("run", "--help").stdout
    assert "reverse_noise" not in plain and "negative_cosine" not in plain
    missing = _bdfl("run", "--plugin", "no_such_plugin_module", "--help")
    assert missing.returncode == 2 and "error:" in missing.stderr and "plugins" in missing.stderr
    assert "Traceback" not in missing.stderr


def _run_args(*argv: str) -> tuple[ExperimentConfig, list[str]]:
    return cli.run_config(cli.build_parser().parse_args(["run", *argv]))


def test_attack_flags_and_attack_groups(tmp_path: Path) -> None:
    """A config with [[attack.groups]] names each group's attack and fraction: --attack NAME or
    --attackers would be silently ignored, so they are refused (exit 2); --attack none is a clean
    run whatever the config says."""
    config = tmp_path / "groups.toml"
    config.write_text('peers = 13\n[[attack.groups]]\nname = "sign_flip"\nfraction = 0.2\n'
                      '[[attack.groups]]\nname = "label_flip"\nfraction = 0.2\n')
    for flags in (["--attack", "sign_flip"], ["--attackers", "0.1"], ["--attack", "sign_flip", "--attackers", "0.1"]):
        with pytest.raises(ConfigError) as info:
            _run_args(*["--config", str(config), *flags])
        assert info.value.field == "attack.groups" and info.value.exit_code == 2
    cfg, notes = _run_args(*["--config", str(config), "--attack", "none"])
    assert not cfg.attack.groups and cfg.num_attackers == 0 and any("[[attack.groups]] are not used" in n for n in notes)
    assert _run_args(*["--config", str(config)])[0].num_attackers == 4  # without the flags: the groups
    small = tmp_path / "groups7.toml"  # 7 peers: the scale-down note, said once though the config is read again
    small.write_text(config.read_text().replace("peers = 13", "peers = 7"))
    _cfg, notes = _run_args(*["--config", str(small), "--attack", "none"])
    assert sum(n.startswith("scaled down for 7 peers") for n in notes) == 1


def test_set_without_a_value_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        _run_args("--set", "task.alpha")
    assert info.value.exit_code == 2 and "KEY=VALUE" in str(info.value) and info.value.field == "task.alpha"
    assert "e.g. --set protocol.committee_size=9" in info.value.fix and "(allowed:" not in str(info.value)
    with pytest.raises(ConfigError) as info:
        _run_args("--set", "=3")  # no key: the field was named ''
    assert info.value.field == "--set" and info.value.exit_code == 2


def test_attack_alone_implies_the_default_fraction(tmp_path: Path) -> None:
    clean = tmp_path / "clean.toml"
    clean.write_text('[attack]\nname = "none"\nfraction = 0.0\n')
    cfg, notes = _run_args("--config", str(clean), "--attack", "sign_flip")
    assert cfg.attack.name == "sign_flip" and cfg.attack.fraction == cli.DEFAULT_ATTACK_FRACTION
    assert cfg.num_attackers == 6 and any("without --attackers" in n for n in notes)
    # a config that already has a fraction keeps it; --attackers always wins
    cfg, notes = _run_args("--attack", "sign_flip", "--set", "attack.fraction=0.2")
    assert cfg.attack.fraction == 0.2 and not notes
    cfg, _ = _run_args("--config", str(clean), "--attack", "sign_flip", "--attackers", "0.1")
    assert cfg.attack.fraction == 0.1
    # --attack none: nobody attacks, whatever the config's fraction
    cfg, _ = _run_args("--attack", "none")
    assert cfg.attack.name == "none" and cfg.num_attackers == 0


@pytest.mark.parametrize("peers", [4, 5, 6, 8])
def test_derived_settings_scale_down_to_small_peer_counts(peers: int) -> None:
    notes: list[str] = []
    cfg = load_config(ROOT / "experiments" / "configs" / "default.toml", {"peers": peers}, notes)
    p = cfg.protocol
    assert p.committee_size <= peers
    assert cfg.overlay.degree == ExperimentConfig().overlay.degree  # a target (complete graph below it): never scaled
    assert p.auditors_per_update <= p.committee_size - 1 and 1 <= p.quorum <= p.auditors_per_update
    assert len(notes) == 1 and f"scaled down for {peers} peers" in notes[0]
    big = load_config(ROOT / "experiments" / "configs" / "default.toml", {"peers": 20}, notes)
    assert len(notes) == 1  # nothing scaled, nothing said
    if peers < big.protocol.committee_size:
        assert p.committee_size == peers and p.auditors_per_update == peers - 1
        # the quorum keeps its share of the auditors, rounded up
        want = -(-big.protocol.quorum * p.auditors_per_update // big.protocol.auditors_per_update)
        assert p.quorum == want


def test_settings_given_on_the_command_line_are_never_scaled(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(None, {"peers": 4, "protocol.committee_size": 5})
    assert exc.value.field == "protocol.committee_size"
    cfg, notes = _run_args("--peers", "4", "--set", "protocol.committee_size=4")
    assert cfg.protocol.committee_size == 4 and cfg.protocol.auditors_per_update == 3
    assert "protocol.committee_size" not in notes[0] and "auditors_per_update" in notes[0]
    # a resolved config.toml (what a results folder keeps) fits already: re-running it scales nothing
    resolved = tmp_path / "config.toml"
    resolved.write_text(dump_toml(cfg))
    notes2: list[str] = []
    assert load_config(resolved, None, notes2) == cfg and notes2 == []


@pytest.mark.parametrize("peers", [21, 30, 50, 100, 1000])
def test_the_default_committee_grows_with_the_peers(tmp_path: Path, peers: int) -> None:
    """No config sets the committee: 9 seats per 20 members, at most 2m + 1 (m and the quorum
    unchanged); a size the config file or the command line gives is kept."""
    notes: list[str] = []
    cfg = load_config(ROOT / "experiments" / "configs" / "default.toml", {"peers": peers}, notes)
    seats, members = COMMITTEE_SHARE
    want = min(MAX_COMMITTEE, math.ceil(peers * seats / members), 2 * 8 + 1)
    assert cfg.protocol.committee_size == want > ExperimentConfig().protocol.committee_size
    assert (cfg.protocol.auditors_per_update, cfg.protocol.quorum) == (8, 5)
    assert len(notes) == 1 and f"scaled up for {peers} peers" in notes[0] and f"9 -> {want}" in notes[0]
    assert load_config(None, {"peers": peers, "protocol.committee_size": 9}).protocol.committee_size == 9
    if peers >= 50:  # the cap follows m: a file that sets m = 12 gets up to 25 seats
        wide = load_config(None, {"peers": peers, "protocol.auditors_per_update": 12}).protocol
        assert wide.committee_size == min(math.ceil(peers * seats / members), 25)
    fixed = tmp_path / "fixed.toml"
    fixed.write_text("[protocol]\ncommittee_size = 12\n")
    assert load_config(fixed, {"peers": peers}).protocol.committee_size == 12
    # what a results folder keeps re-runs as it ran
    resolved = tmp_path / "config.toml"
    resolved.write_text(dump_toml(cfg))
    assert load_config(resolved, None) == cfg


def test_a_relative_task_file_is_kept_absolute_in_the_runs_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """config.toml must rerun from any folder: `bdfl run --config <run>/config.toml` failed with
    "task file mytask.py does not exist" when the run had been started with a relative path."""
    from bdfl.experiment.orchestrator import _rerunnable

    (tmp_path / "mytask.py").write_text("")
    monkeypatch.chdir(tmp_path)
    cfg = load_config(None, {"task.client": "mytask.py"})
    assert _rerunnable(cfg).task.client == str(tmp_path / "mytask.py")
    assert _rerunnable(load_config(None, {})).task.client == "clients.digits"  # a module name stays as it is


def test_a_trimmed_mean_that_trims_nothing_is_said() -> None:
    """At 4 peers beta 0.2 of 4 models trims none: the baseline is FedAvg, and the log says so."""
    _cfg, notes = _run_args("--peers", "4", "--defense", "trimmed_mean", "--attack", "none")
    assert any("trims none" in n for n in notes)
    _cfg, notes = _run_args("--peers", "20", "--defense", "trimmed_mean", "--attack", "none")
    assert not any("trims none" in n for n in notes)


def test_a_config_files_own_misfit_is_refused_not_rewritten(tmp_path: Path) -> None:
    """quorum 50 in a file for 20 peers ran with quorum 8 (every auditor must vote); the same value
    by --set was refused. A file's values are scaled only when --peers changed its peer count."""
    bad = tmp_path / "bad.toml"
    bad.write_text("peers = 20\n[protocol]\nauditors_per_update = 30\nquorum = 50\n")
    with pytest.raises(ConfigError) as exc:
        load_config(bad, None, [])
    assert exc.value.field.startswith("protocol.") and exc.value.exit_code == 2
    notes: list[str] = []
    cfg = load_config(bad, {"peers": 12}, notes)  # run at another peer count: fitted, and said
    assert cfg.protocol.auditors_per_update <= cfg.protocol.committee_size - 1 and cfg.protocol.quorum <= cfg.protocol.auditors_per_update
    assert len(notes) == 1 and "scaled down for 12 peers" in notes[0] and "--degree" not in notes[0]


def test_attack_name_and_fraction_beside_groups_are_said_to_be_unused(tmp_path: Path) -> None:
    both = tmp_path / "both.toml"
    both.write_text('peers = 13\n[attack]\nname = "label_flip"\nfraction = 0.3\n[[attack.groups]]\nname = "sign_flip"\nfraction = 0.2\n')
    notes: list[str] = []
    cfg = load_config(both, None, notes)
    assert cfg.num_attackers == 2 and any("[attack] name 'label_flip', fraction 0.3 not used" in n for n in notes)
    resolved = tmp_path / "config.toml"  # what a results folder keeps: without them, so its re-run says nothing
    resolved.write_text(dump_toml(cfg))
    notes2: list[str] = []
    assert load_config(resolved, None, notes2) == cfg and notes2 == []


def test_half_or_more_attackers_is_said_to_void_the_honest_majority() -> None:
    cfg, notes = _run_args("--attackers", "0.5")
    assert cfg.num_attackers == 10 and any("no honest majority" in n for n in notes)
    assert not any("no honest majority" in n for n in _run_args("--attackers", "0.45")[1])


def test_a_task_modules_own_training_defaults_fill_what_nobody_set(tmp_path: Path) -> None:
    """Flower's quickstart ClientApp trains with Adam, at which the library's 0.05 does not learn
    (0.103 vs 0.830 at 0.01): its module says TASK_DEFAULTS = {"learning_rate": 0.01}. Taken when
    neither the file nor --set gives the rate, and said; a value given anywhere wins."""
    cfg, notes = _run_args("--set", "task.client=clients.torch_clientapp")
    assert cfg.task.learning_rate == 0.01
    assert any("task.learning_rate 0.01" in n and "TASK_DEFAULTS" in n for n in notes), notes
    cfg, notes = _run_args("--set", "task.client=clients.torch_clientapp", "--set", "task.learning_rate=0.05")
    assert cfg.task.learning_rate == 0.05 and not any("TASK_DEFAULTS" in n for n in notes)
    path = tmp_path / "adam.toml"
    path.write_text('[task]\nclient = "clients.torch_clientapp"\nlearning_rate = 0.003\n')
    assert _run_args("--config", str(path))[0].task.learning_rate == 0.003
    cfg, notes = _run_args()  # the default task declares none
    assert cfg.task.learning_rate == ExperimentConfig().task.learning_rate and not any("TASK_DEFAULTS" in n for n in notes)


@pytest.mark.parametrize(("declared", "said"), [
    ('{"rounds": 3}', "TASK_DEFAULTS sets rounds: a task module may set only learning_rate"),
    ('{"learning_rate": -1.0}', "task.learning_rate': value -1.0 is out of range (allowed: (0, 10]); the value is the task "
                                "module's own (its TASK_DEFAULTS)"),
    ('[("learning_rate", 0.01)]', "TASK_DEFAULTS must be a dict"),
])
def test_a_task_modules_bad_defaults_stop_the_run_naming_them(tmp_path: Path, declared: str, said: str) -> None:
    task = tmp_path / "badtask.py"
    task.write_text(f"TASK_DEFAULTS = {declared}\n\ndef load_dataset(data_dir=None): ...\n\ndef make_client(train, val, *, seed, hparams=None): ...\n")
    with pytest.raises(ConfigError) as err:
        _run_args("--set", f"task.client={task}")
    assert said in str(err.value)


def test_a_full_disk_is_one_error_line_not_a_traceback(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """An OSError of the machine (disk full, folder not writable) was a raw traceback (an outside probe)."""
    def full(_args: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device", "/results/x/metrics.csv")

    monkeypatch.setattr(cli, "cmd_report", full)
    assert cli.main(["report", "somewhere"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "error: No space left on device: /results/x/metrics.csv" and err[1].startswith("fix: free disk space")
    with pytest.raises(OSError):
        cli.main(["report", "somewhere", "--debug"])

    def refused(_args: object) -> int:
        raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")

    monkeypatch.setattr(cli, "cmd_report", refused)
    with pytest.raises(ConnectionRefusedError):  # not the machine's disk: no guessed fix
        cli.main(["report", "somewhere"])


def test_a_reader_that_leaves_the_pipe_is_not_a_traceback() -> None:
    """`bdfl ... | head` printed a BrokenPipeError traceback (an outside probe)."""
    # a command printing more than a pipe holds (bdfl account's listing stands in for it here)
    code = ("import sys; from bdfl import cli\n"
            "def many(_args):\n    for _ in range(20000):\n        print('x' * 100)\n    return 0\n"
            "cli.cmd_report = many\nsys.exit(cli.main(['report', 'x']))\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.read(10)
    proc.stdout.close()  # `| head`: the reader takes a line and leaves
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141, err  # 128 + SIGPIPE, as a shell reports a writer whose reader left
    assert "Traceback" not in err and "BrokenPipe" not in err, err
