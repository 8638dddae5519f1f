"""`radstation-eval drafting --sentence-bank`: another bank (the IU one, development only) replaces the shipped
one for evaluation; a missing bank is a clear error before any data is read."""

from __future__ import annotations

from lab.eval.cli import build_parser, main


def test_a_missing_sentence_bank_is_a_clear_error(tmp_path, capsys):
    assert main(["drafting", "--split", "val", "--sentence-bank", str(tmp_path / "nowhere"),
                 "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "nowhere/sentence_bank.json does not exist" not in err  # not a folder: named as given
    assert f"sentence bank {tmp_path / 'nowhere'} does not exist" in err and "lab.build.sentence_bank" in err
    (tmp_path / "dev").mkdir()
    assert main(["drafting", "--split", "val", "--sentence-bank", str(tmp_path / "dev"),
                 "--out", str(tmp_path / "out")]) == 2
    assert f"{tmp_path / 'dev' / 'sentence_bank.json'} does not exist" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # nothing drafted or written


def test_the_flag_is_parsed():
    args = build_parser().parse_args(["drafting", "--sentence-bank", "out/dev/iu_sentence_bank"])
    assert str(args.sentence_bank) == "out/dev/iu_sentence_bank"
