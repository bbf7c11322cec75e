import argparse
import json

import pytest

from fastexit_bench.cli import build_parser, main


def _subcommands(parser, prefix=()):
    for action in parser._subparsers._group_actions if parser._subparsers else []:
        for name, sub in action.choices.items():
            yield (*prefix, name)
            yield from _subcommands(sub, (*prefix, name))


def test_every_subcommand_has_help(capsys):
    paths = list(_subcommands(build_parser()))
    assert ("data", "show") in paths and ("backbone", "show") in paths
    for path in paths:
        with pytest.raises(SystemExit) as info:
            main([*path, "--help"])
        assert info.value.code == 0
        assert "usage:" in capsys.readouterr().out


def test_data_show_prints_sizes_labels_and_an_example(mirror, capsys):
    assert main(["data", "show", "sst2", "shopping", "--mirror", str(mirror)]) == 0
    out = capsys.readouterr().out
    assert (
        "train                    62349 rows" in out
    )  # 67,349 less the selection split (GLUE's dev is reported)
    assert "selection                 5000 rows" in out
    assert "labels {'negative': 5327, 'positive': 4673}" in out  # shopping validation, mapped back
    assert out.count("example (") == 2


def test_user_errors_exit_2_with_one_line(capsys):
    assert main(["data", "show", "sst-3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fastexit-bench: error: unknown dataset 'sst-3'") and "\n" not in err


def test_prepare_writes_summary_with_provenance(tmp_path, resources):
    out = tmp_path / "bbc.json"
    code = main(
        [
            "data",
            "prepare",
            "bbc_news",
            "--backbone",
            "tiny-bert",
            "--resources",
            str(resources),
            "--max-train",
            "30",
            "--max-eval",
            "10",
            "--max-length",
            "64",
            "--out",
            str(out),
        ]
    )
    assert code == 0

    summary = json.loads(out.read_text())
    assert summary["splits"]["train"]["rows"] == 30 and summary["splits"]["test"]["rows"] == 10
    assert summary["provenance"]["env"]["torch"] and summary["backbone"]["requested"] == "tiny-bert"
    assert len(summary["provenance"]["config_sha256"]) == 64


def test_every_option_has_help_that_shows_its_default():
    parser = build_parser()
    missing = []
    for path in _subcommands(parser):
        sub = parser
        for name in path:
            sub = next(a for a in sub._subparsers._group_actions).choices[name]
        for action in sub._actions:
            if action.option_strings and action.dest != "help" and not action.help:
                missing.append(f"{' '.join(path)} {action.option_strings[0]}")
        if any(
            a.option_strings and a.dest != "help" and a.default is not argparse.SUPPRESS for a in sub._actions
        ):
            assert "(default:" in sub.format_help(), path
    assert missing == []


@pytest.mark.parametrize(
    "command, option, value",
    [
        ("train", "--max-train", "0"),
        ("train", "--max-train", "-5"),
        ("train", "--epochs", "0"),
        ("train", "--max-steps", "0"),
        ("train", "--batch-size", "0"),
        ("train", "--lr", "nan"),
        ("train", "--lr", "-1e-5"),
        ("train", "--max-length", "0"),
        ("train", "--warmup", "5"),
        ("train", "--checkpoint-every", "-3"),
        ("train", "--seed", "-1"),
        ("evaluate", "--max-eval", "0"),
        ("sweep", "--max-drop", "-1"),
        ("sweep", "--policies", ","),
        ("sweep", "--policies", ""),
        ("sweep", "--values", "speed=nan"),
        ("sweep", "--min-speedup", "0"),
        ("latency", "--batch-sizes", "0,1"),
        ("latency", "--repeats", "0"),
        ("plan", "--tflops", "inf"),
    ],
)
def test_numeric_and_list_options_are_range_checked_before_any_work(capsys, command, option, value):
    required = {
        "train": ["--dataset", "sst2", "--backbone", "tiny-bert", "--recipe", "baseline", "--out", "m"],
        "evaluate": ["m", "--out", "x.npz"],
        "sweep": ["x.npz", "--out", "s.csv"],
        "latency": ["m", "--selection", "s.csv", "--out", "l.json"],
        "plan": ["deebert_table1"],
    }[command]
    with pytest.raises(SystemExit) as info:
        main([command, *required, f"{option}={value}"])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert (
        err.startswith(f"fastexit-bench {command}: error: argument {option}: expected ")
        and repr(value) in err
    )
