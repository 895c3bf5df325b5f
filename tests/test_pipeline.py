"""The main job: data → pretrain → train → predict → score, through the real commands."""
import json
import os
import shlex
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

from solutions.checkpoints import load_model, save_model
from solutions.config import BertConfig
from solutions.data import Record, make_demo_corpus, read_jsonl, split_train_dev, write_jsonl
from solutions.finetune import FinetuneSettings, finetune
from solutions.models import BertForMaskedLM, BertForSequenceClassification
from solutions.tokenization import Tokenizer, train_vocab
from solutions.training import TrainingError, read_log

CLI = [sys.executable, "-m", "autograder.cli"]
ENV = {**os.environ, "OMP_NUM_THREADS": "2", "TQDM_DISABLE": "1"}


def run(*args, check=True):
    result = subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, env=ENV, timeout=900)
    if check and result.returncode != 0:
        raise AssertionError(f"{args} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result


@pytest.fixture(scope="module")
def demo_records():
    return make_demo_corpus(n_pages=400, seed=1)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory, demo_records):
    """A random tiny MLM BERT with a vocabulary trained on the demo texts."""
    path = tmp_path_factory.mktemp("tiny") / "ckpt"
    tokenizer = Tokenizer(train_vocab([r.text for r in demo_records], 800))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128)
    save_model(BertForMaskedLM(config), path, tokenizer)
    return path


@pytest.mark.slow
def test_commands_end_to_end_beat_the_majority_baseline(tmp_path):
    data = tmp_path / "data"
    run("data", "demo", "--pages", "1200", "--out", data, "--seed", "3")
    train, dev = list(read_jsonl(data / "train.jsonl")), list(read_jsonl(data / "dev.jsonl"))
    assert len(train) + len(dev) == 1200
    pre = run("pretrain", "--data", data / "train.jsonl", "--dev", data / "dev.jsonl", "--out", tmp_path / "pre",
              "--size", "tiny", "--vocab-size", "2000", "--max-steps", "150", "--batch-size", "32", "--lr", "1e-3",
              "--eval-every", "50", "--device", "cpu")
    summary = json.loads((tmp_path / "pre" / "pretrain_summary.json").read_text())
    assert f"評価用テキストの損失 {summary['dev_loss']:.3f}" in pre.stderr
    assert f"頻度だけで当てたときの損失 {summary['unigram_loss']:.3f}" in pre.stderr
    assert [e["step"] for e in read_log(tmp_path / "pre" / "metrics.jsonl") if "dev_loss" in e] == [50, 100, 150, 150]
    run("train", "--train", data / "train.jsonl", "--dev", data / "dev.jsonl", "--checkpoint", tmp_path / "pre",
        "--out", tmp_path / "ft", "--epochs", "4", "--lr", "1e-3", "--max-length", "96", "--windows", "2",
        "--no-multi-label", "--device", "cpu")
    assert json.loads((tmp_path / "ft" / "best" / "config.json").read_text())["windows"] == 2  # predict reads it
    for name in ("best/config.json", "best/model.safetensors", "best/vocab.txt", "metrics.jsonl",
                 "learning_curve.png", "last/state.pt"):
        assert (tmp_path / "ft" / name).exists(), name
    gold = tmp_path / "gold.jsonl"
    write_jsonl(gold, dev)
    inputs = tmp_path / "inputs.jsonl"
    write_jsonl(inputs, [Record(r.page_id, r.title, r.text, []) for r in dev])
    run("predict", "--checkpoint", tmp_path / "ft" / "best", "--input", inputs,
        "--output", tmp_path / "pred.jsonl", "--device", "cpu", "--max-length", "96")
    lines = [json.loads(x) for x in (tmp_path / "pred.jsonl").read_text().splitlines()]
    assert [x["page_id"] for x in lines] == [r.page_id for r in dev]
    (key,) = lines[0]["ENEs"]  # ENE labels -> the SHINRA submission format
    assert key.startswith("AUTO.MyBERT.")
    report = json.loads(run("score", gold, tmp_path / "pred.jsonl").stdout)
    # train left the best epoch's dev answers in the same simple form: the scorer agrees with its F1.
    best = json.loads((tmp_path / "ft" / "summary.json").read_text())["best"]
    answers = json.loads(run("score", gold, tmp_path / "ft" / "dev_predictions.jsonl").stdout)
    assert answers["f1"] == pytest.approx(best["dev_micro_f1"], abs=1e-6)
    majority = Counter(r.labels[0] for r in train).most_common(1)[0][0]
    majority_tp = sum(majority in r.labels for r in dev)
    majority_f1 = 100 * 2 * majority_tp / (len(dev) + sum(len(r.labels) for r in dev))
    assert report["f1"] > majority_f1 + 5, (report["f1"], majority_f1)


def test_dev_predictions_are_the_best_epochs_answers(tmp_path, tiny_checkpoint, demo_records, monkeypatch):
    """dev_predictions.jsonl: one row per dev page, from the epoch kept as best (here the
    second of three, by a ranking imposed on the scores), and scikit-learn's micro-F1
    over its label sets is the F1 that evaluation computed for that epoch."""
    from sklearn.metrics import f1_score
    from sklearn.preprocessing import MultiLabelBinarizer

    import solutions.finetune as F

    real_evaluate, epochs = F.evaluate, []

    def ranked_evaluate(*args):
        f1, rows = real_evaluate(*args)
        epochs.append((f1, rows))
        return [20.0, 90.0, 40.0][len(epochs) - 1], rows

    monkeypatch.setattr(F, "evaluate", ranked_evaluate)
    train, dev = small_split(demo_records)
    summary = finetune(train, dev, tiny_checkpoint, tmp_path / "ft",
                       FinetuneSettings(epochs=3, lr=3e-3, max_length=64, device="cpu", keep_state=False))
    assert summary["best"]["epoch"] == 2
    rows = [json.loads(line) for line in (tmp_path / "ft" / "dev_predictions.jsonl").read_text().splitlines()]
    assert rows == epochs[1][1] and rows != epochs[2][1]  # the second epoch's answers, not the last
    assert [row["page_id"] for row in rows] == [r.page_id for r in dev]
    assert all(len(row["probs"]) == len(row["labels"]) and all(0 <= p <= 1 for p in row["probs"]) for row in rows)
    binarizer = MultiLabelBinarizer().fit([r.labels for r in train + dev])
    gold, predicted = (binarizer.transform(sets) for sets in ([r.labels for r in dev], [row["labels"] for row in rows]))
    f1 = 100 * f1_score(gold, predicted, average="micro")
    assert f1 == pytest.approx(epochs[1][0], abs=1e-9)


def small_split(records):
    return split_train_dev(records[:240], dev_fraction=0.25, seed=0)


def weights(path):
    model, _ = load_model(path, BertForSequenceClassification)
    return model.state_dict()


def test_resume_reaches_the_same_weights_as_an_uninterrupted_run(tmp_path, tiny_checkpoint, demo_records):
    train, dev = small_split(demo_records)
    settings = dict(epochs=2, batch_size=16, lr=1e-3, max_length=64, device="cpu", save_every=4)
    finetune(train, dev, tiny_checkpoint, tmp_path / "full", FinetuneSettings(**settings))
    first = finetune(train, dev, tiny_checkpoint, tmp_path / "cut", FinetuneSettings(**settings, stop_after_steps=7))
    assert first["stopped_early"] and first["steps"] == 7
    second = finetune(train, dev, tiny_checkpoint, tmp_path / "cut", FinetuneSettings(**settings), resume=True)
    assert not second["stopped_early"] and second["steps"] == second["total_steps"]
    a, b = torch.load(tmp_path / "full/last/state.pt")["model"], torch.load(tmp_path / "cut/last/state.pt")["model"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=0, rtol=0, msg=key)
    log = [json.loads(x) for x in (tmp_path / "cut/metrics.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in log if "dev_micro_f1" in e] == [1, 2]


@pytest.mark.parametrize("pressed_at", [5, 12])  # inside the first epoch (12 steps), and at its end
def test_ctrl_c_saves_the_state_after_the_step_and_resume_goes_on_exactly(tmp_path, tiny_checkpoint, demo_records,
                                                                        monkeypatch, capfd, pressed_at):
    import signal

    import solutions.finetune as F

    train, dev = small_split(demo_records)
    settings = dict(epochs=2, batch_size=16, lr=1e-3, max_length=64, device="cpu", save_every=100)
    finetune(train, dev, tiny_checkpoint, tmp_path / "full", FinetuneSettings(**settings))
    real_step, calls = F.train_step, {"n": 0}

    def pressing_ctrl_c(*args, **kwargs):  # a real SIGINT, in the middle of a step
        calls["n"] += 1
        if calls["n"] == pressed_at:
            os.kill(os.getpid(), signal.SIGINT)
        return real_step(*args, **kwargs)

    monkeypatch.setattr(F, "train_step", pressing_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        finetune(train, dev, tiny_checkpoint, tmp_path / "cut", FinetuneSettings(**settings))
    assert "このステップが終わったら保存して止めます" in capfd.readouterr().err
    assert torch.load(tmp_path / "cut/last/state.pt")["step"] == pressed_at  # the step it was in, finished
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Ctrl-C is itself again
    monkeypatch.setattr(F, "train_step", real_step)
    finetune(train, dev, tiny_checkpoint, tmp_path / "cut", FinetuneSettings(**settings), resume=True)
    a, b = torch.load(tmp_path / "full/last/state.pt")["model"], torch.load(tmp_path / "cut/last/state.pt")["model"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=0, rtol=0, msg=key)
    log = [json.loads(x) for x in (tmp_path / "cut/metrics.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in log if "dev_micro_f1" in e] == [1, 2]


def test_ctrl_c_in_the_train_command_says_how_to_resume(tmp_path, tiny_checkpoint, demo_records):
    import signal
    import time

    train, dev = small_split(demo_records)
    write_jsonl(tmp_path / "train.jsonl", train)
    write_jsonl(tmp_path / "dev.jsonl", dev)
    args = ["train", "--train", tmp_path / "train.jsonl", "--dev", tmp_path / "dev.jsonl", "--checkpoint",
            tiny_checkpoint, "--out", tmp_path / "ft", "--epochs", "200", "--max-length", "48", "--device", "cpu"]
    run_ = subprocess.Popen([*CLI, *map(str, args)], stderr=subprocess.PIPE, text=True, env=ENV,
                            start_new_session=True)
    try:
        log = tmp_path / "ft/metrics.jsonl"
        for _ in range(1200):  # until the first steps are logged
            if log.is_file() and log.read_text().count("\n") >= 2:
                break
            time.sleep(0.1)
        else:
            pytest.fail("train logged no step in 120 s")
        os.killpg(run_.pid, signal.SIGINT)  # as the terminal does
        _, stderr = run_.communicate(timeout=120)
    finally:
        if run_.poll() is None:
            os.killpg(run_.pid, signal.SIGKILL)
    assert run_.returncode == 130, stderr[-2000:]
    assert "中断しました。最後に保存した状態" in stderr
    saved = torch.load(tmp_path / "ft/last/state.pt")["step"]
    assert 0 < saved < 200 * 12
    # The command it suggests is this one with --resume, runnable as printed.
    again = suggested(subprocess.CompletedProcess(args, 130, stderr=stderr), {})
    assert again == [*map(str, args), "--resume"]
    resumed = run(*again, "--stop-after-steps", str(saved + 3))
    assert torch.load(tmp_path / "ft/last/state.pt")["step"] == saved + 3, resumed.stderr[-2000:]
    assert f"ステップ {saved} から続けます" in resumed.stderr
    fresh = run(*args, "--stop-after-steps", "2")  # the same command without --resume starts over: said
    assert "前の学習の状態があります。今回は最初から学習して上書きします" in fresh.stderr


def test_a_failed_save_keeps_the_previous_state_and_resume_works(tmp_path, tiny_checkpoint, demo_records, monkeypatch):
    train, dev = small_split(demo_records)
    settings = dict(epochs=1, batch_size=16, lr=1e-3, max_length=64, device="cpu", save_every=3)
    real_save = torch.save
    calls = {"n": 0}

    def disk_full_on_second_state(obj, f, *args, **kwargs):
        if str(f).endswith("state.tmp"):
            calls["n"] += 1
            if calls["n"] == 2:
                raise OSError(28, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", disk_full_on_second_state)
    with pytest.raises(TrainingError, match=r"学習状態を保存できません \(ディスクがいっぱいです\)。ディスクの空きを"):
        finetune(train, dev, tiny_checkpoint, tmp_path / "run", FinetuneSettings(**settings))
    assert torch.load(tmp_path / "run/last/state.pt")["step"] == 3
    monkeypatch.setattr(torch, "save", real_save)
    summary = finetune(train, dev, tiny_checkpoint, tmp_path / "run", FinetuneSettings(**settings), resume=True)
    assert summary["steps"] == summary["total_steps"]


def test_predictions_do_not_depend_on_batch_size(tmp_path, tiny_checkpoint, demo_records):
    train, dev = small_split(demo_records)
    finetune(train, dev, tiny_checkpoint, tmp_path / "ft",
             FinetuneSettings(epochs=1, batch_size=16, max_length=64, device="cpu", multi_label=True))
    inputs = tmp_path / "in.jsonl"
    write_jsonl(inputs, dev)
    outputs = []
    for batch_size in (1, 7, 64):
        out = tmp_path / f"pred{batch_size}.jsonl"
        run("predict", "--checkpoint", tmp_path / "ft/best", "--input", inputs, "--output", out,
            "--format", "simple", "--batch-size", batch_size, "--device", "cpu", "--max-length", 64)
        outputs.append([json.loads(x) for x in out.read_text().splitlines()])
    for other in outputs[1:]:
        for a, b in zip(outputs[0], other, strict=True):
            assert a["page_id"] == b["page_id"] and a["labels"] == b["labels"]
            assert a["probs"] == pytest.approx(b["probs"], abs=2e-4)


def test_bad_lines_are_reported_with_file_and_line_and_the_rest_is_used(tmp_path, tiny_checkpoint, demo_records):
    train, dev = small_split(demo_records)
    path = tmp_path / "train.jsonl"
    write_jsonl(path, train)
    lines = path.read_text().splitlines()
    lines[4] = "{not json"
    lines[9] = json.dumps({"page_id": "x9", "title": "t", "labels": ["1.1"]})  # no text
    path.write_text("\n".join(lines) + "\n")
    write_jsonl(tmp_path / "dev.jsonl", dev + [Record("new1", "t", "未知のラベルのページ", ["9.9.9"])])
    result = run("train", "--train", path, "--dev", tmp_path / "dev.jsonl", "--checkpoint", tiny_checkpoint,
                 "--out", tmp_path / "ft", "--epochs", "1", "--max-length", "48", "--device", "cpu")
    assert f"{path}:5:" in result.stderr
    assert f"{path}:10: 'text'" in result.stderr
    assert "9.9.9" in result.stderr and "訓練データにありません" in result.stderr and "最初はページ new1" in result.stderr
    assert "Traceback" not in result.stderr


def test_empty_dataset_and_mismatched_vocab_are_clear_errors(tmp_path, tiny_checkpoint, demo_records):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    result = run("train", "--train", empty, "--dev", empty, "--checkpoint", tiny_checkpoint,
                 "--out", tmp_path / "x", check=False)
    assert result.returncode == 1 and str(empty) in result.stderr and "Traceback" not in result.stderr

    train, dev = small_split(demo_records)
    write_jsonl(tmp_path / "t.jsonl", train)
    broken = tmp_path / "broken"
    model, _ = load_model(tiny_checkpoint, BertForMaskedLM)
    from solutions.tokenization import SPECIAL_TOKENS
    more_tokens_than_embeddings = SPECIAL_TOKENS + [f"語{i}" for i in range(model.config.vocab_size)]
    save_model(model, broken, Tokenizer({token: i for i, token in enumerate(more_tokens_than_embeddings)}))
    result = run("train", "--train", tmp_path / "t.jsonl", "--dev", tmp_path / "t.jsonl", "--checkpoint", broken,
                 "--out", tmp_path / "y", "--device", "cpu", check=False)
    assert result.returncode == 1 and "vocab" in result.stderr and "Traceback" not in result.stderr


def test_a_missing_file_is_a_clear_error(tmp_path, tiny_checkpoint):
    result = run("train", "--train", "/nonexistent.jsonl", "--dev", "/nonexistent.jsonl",
                 "--checkpoint", tiny_checkpoint, "--out", tmp_path / "z", check=False)
    assert result.returncode == 1 and "/nonexistent.jsonl" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("args, message", [
    (["train", "--epochs", "0"], "--epochs: 1 以上の整数にしてください (0)"),
    (["train", "--lr", "-1"], "--lr: 0 より大きい数にしてください (-1)"),
    (["train", "--lr", "nan"], "--lr: 0 より大きい数にしてください (nan)"),
    (["predict", "--batch-size", "-1"], "--batch-size: 1 以上の整数にしてください (-1)"),
    (["pretrain", "--max-steps", "0"], "--max-steps: 1 以上の整数にしてください (0)"),
    (["pretrain", "--mask-prob", "0"], "--mask-prob: 0 と 1 のあいだの数にしてください (0)"),
    (["data", "demo", "--dev-fraction", "1.5"], "--dev-fraction: 0 と 1 のあいだの数にしてください (1.5)"),
    (["predict", "--device", "tpu"], "--device: auto / cpu / cuda のどれかにしてください (tpu)"),
])
def test_absurd_numbers_are_refused_before_any_work(args, message):
    result = run(*args, check=False)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_predict_says_which_checkpoint_and_which_paths_it_needs(tmp_path, tiny_checkpoint, demo_records):
    pages = tmp_path / "pages.jsonl"
    write_jsonl(pages, demo_records[:5])
    predict = ("predict", "--checkpoint", tiny_checkpoint, "--device", "cpu")
    cases = [((pages, tmp_path / "p.jsonl"), "分類器のチェックポイントではありません"),  # a pre-trained one
             ((tmp_path, tmp_path / "p.jsonl"), "フォルダです。予測するページ"),
             ((pages, tmp_path), "フォルダです。出力するファイルの名前")]
    for (source, output), message in cases:
        result = run(*predict, "--input", source, "--output", output, check=False)
        assert result.returncode == 1 and message in result.stderr and "Traceback" not in result.stderr


def random_classifier(path, records, labels):
    """An untrained one-layer classifier with a vocabulary of the records: enough to run predict."""
    tokenizer = Tokenizer(train_vocab([r.text for r in records], 800))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64, labels=labels)
    save_model(BertForSequenceClassification(config), path, tokenizer)
    return path


def test_predict_with_no_usable_page_fails_and_hints_at_the_dump(tmp_path, demo_records):
    train, dev = small_split(demo_records)
    write_jsonl(tmp_path / "t.jsonl", train)
    write_jsonl(tmp_path / "d.jsonl", dev)
    ckpt = random_classifier(tmp_path / "ckpt", demo_records, sorted({x for r in train for x in r.labels}))
    inputs = tmp_path / "shinra_inputs.jsonl"  # SHINRA's input file: no text without --dump
    inputs.write_text("".join(json.dumps({"page_id": str(i), "title": "t"}) + "\n" for i in range(30)))
    result = run("predict", "--checkpoint", ckpt, "--input", inputs, "--output", tmp_path / "p.jsonl",
                 "--device", "cpu", check=False)
    assert result.returncode == 1 and "予測できるページが入力に 1 件もありませんでした" in result.stderr
    assert "--dump" in result.stderr and "ほかに 10 行" in result.stderr and result.stderr.count("警告:") == 22
    assert not (tmp_path / "p.jsonl").exists()


def test_resume_says_which_given_settings_it_does_not_use(tmp_path, tiny_checkpoint, demo_records, capsys):
    train, dev = small_split(demo_records)
    settings = dict(epochs=1, batch_size=16, max_length=48, device="cpu")
    finetune(train, dev, tiny_checkpoint, tmp_path / "ft", FinetuneSettings(**settings, stop_after_steps=2))
    capsys.readouterr()
    finetune(train, dev, tiny_checkpoint, tmp_path / "ft", FinetuneSettings(**{**settings, "epochs": 3}), resume=True)
    assert "次の指定は使いません: epochs (指定 3、保存 1)" in capsys.readouterr().err


def test_a_classifier_for_other_labels_gives_its_encoder_and_a_new_classifier(tmp_path, tiny_checkpoint, capsys):
    old, _ = load_model(tiny_checkpoint, BertForSequenceClassification, labels=["a", "b", "c"])
    save_model(old, tmp_path / "old", Tokenizer.from_pretrained(tiny_checkpoint))
    new, missing = load_model(tmp_path / "old", BertForSequenceClassification, labels=["x", "y", "z", "w", "v"])
    assert "ほかのラベル (3 種類)" in capsys.readouterr().err
    assert new.classifier.out_features == 5 and set(missing) == {"classifier.weight", "classifier.bias"}
    torch.testing.assert_close(new.bert.embeddings.token.weight, old.bert.embeddings.token.weight, atol=0, rtol=0)
    same, missing = load_model(tmp_path / "old", BertForSequenceClassification, labels=["a", "b", "c"])
    assert missing == [] and "ほかのラベル" not in capsys.readouterr().err
    torch.testing.assert_close(same.classifier.weight, old.classifier.weight, atol=0, rtol=0)


def test_choosing_multi_label_is_said(tmp_path, tiny_checkpoint, demo_records, capsys):
    train, dev = small_split(demo_records)
    train = [Record(r.page_id, r.title, r.text, r.labels + ["extra"] if i < 3 else r.labels)
             for i, r in enumerate(train)]
    several = sum(len(r.labels) > 1 for r in train)
    settings = dict(epochs=1, batch_size=16, max_length=48, device="cpu", stop_after_steps=1)
    finetune(train, dev, tiny_checkpoint, tmp_path / "auto", FinetuneSettings(**settings))
    assert f"複数のラベルを持つページが {several} 件あるので、複数ラベル分類にします" in capsys.readouterr().err
    finetune(train, dev, tiny_checkpoint, tmp_path / "single", FinetuneSettings(**settings, multi_label=False))
    assert f"{several} 件のページは最初のラベルで学習します" in capsys.readouterr().err
    one_each = [Record(r.page_id, r.title, r.text, r.labels[:1]) for r in train]
    finetune(one_each, dev, tiny_checkpoint, tmp_path / "plain", FinetuneSettings(**settings))
    assert "複数" not in capsys.readouterr().err


def test_an_empty_dev_split_is_warned(tmp_path):
    result = run("data", "demo", "--pages", "3", "--out", tmp_path)
    assert "dev.jsonl (0 件)" in result.stderr and "train か dev が 0 件です" in result.stderr
    assert "0 件です" not in run("data", "demo", "--pages", "40", "--out", tmp_path).stderr


def suggested(result, placeholders: dict, which: int = 0) -> list[str]:
    """A command a step suggests next (0: the first, 1: the first alternative),
    placeholders filled in, without 'bert-workshop'."""
    lines = [x.split("bert-workshop ", 1)[1] for x in result.stderr.splitlines()
             if x.startswith(("次は: bert-workshop ", "  または: bert-workshop "))]
    return [placeholders.get(w, w) for w in shlex.split(lines[which])]


def test_each_step_suggests_a_next_command_that_runs(tmp_path, tiny_checkpoint):
    # Every suggestion is run as printed; only placeholders are filled in and
    # small sizes added (a later option wins in argparse).
    data = tmp_path / "data"
    made = run("data", "demo", "--pages", "60", "--out", data)
    run(*suggested(made, {"CHECKPOINT": str(tiny_checkpoint)}, which=1), "--out", tmp_path / "ft_direct",
        "--epochs", "1", "--max-length", "48", "--device", "cpu")  # fine-tuning without pre-training
    assert (tmp_path / "ft_direct/best/config.json").is_file()
    step = run(*suggested(made, {}), "--out", tmp_path / "pre", "--size", "tiny", "--vocab-size", "600",
               "--max-length", "48", "--batch-size", "8", "--max-steps", "3", "--device", "cpu")
    step = run(*suggested(step, {}), "--out", tmp_path / "ft", "--epochs", "1", "--max-length", "48",
               "--device", "cpu")
    submission = tmp_path / "submission.jsonl"
    step = run(*suggested(step, {"PAGES.jsonl": str(data / "dev.jsonl"), "submission.jsonl": str(submission)}),
               "--device", "cpu")
    scored = run(*suggested(step, {"GOLD.jsonl": str(data / "dev.jsonl")}))
    report = json.loads(scored.stdout)
    assert report["pages"] == len(list(read_jsonl(data / "dev.jsonl"))) and report["label_space"] == "ene"
    assert f"Micro-F1: {report['f1']:.4f}" in scored.stderr  # the summary for people
    run(*suggested(step, {"TEAM": "チームA"}, which=1), "--db", tmp_path / "lb.sqlite3", "--gold", data / "dev.jsonl")
    assert "チームA" in run("leaderboard", "show", "--db", tmp_path / "lb.sqlite3").stdout


def test_resuming_with_another_label_set_is_refused(tmp_path, tiny_checkpoint, demo_records):
    train, dev = small_split(demo_records)
    settings = dict(epochs=1, batch_size=16, max_length=48, device="cpu")
    finetune(train, dev, tiny_checkpoint, tmp_path / "ft", FinetuneSettings(**settings, stop_after_steps=2))
    other = [Record(r.page_id, r.title, r.text, ["9"]) for r in train[:5]] + train[5:]
    with pytest.raises(TrainingError, match="ラベル集合"):
        finetune(other, dev, tiny_checkpoint, tmp_path / "ft", FinetuneSettings(**settings), resume=True)


def test_torchrun_with_two_processes_trains_one_model(tmp_path, tiny_checkpoint, demo_records):
    """DDP through torchrun (gloo on CPU here; NCCL on GPUs): same command, one result."""
    train, dev = small_split(demo_records)
    write_jsonl(tmp_path / "train.jsonl", train)
    write_jsonl(tmp_path / "dev.jsonl", dev)
    torchrun = Path(sys.executable).with_name("torchrun")
    result = subprocess.run(
        [str(torchrun), "--nproc_per_node", "2", "-m", "autograder.cli", "train",
         "--train", tmp_path / "train.jsonl", "--dev", tmp_path / "dev.jsonl", "--checkpoint", tiny_checkpoint,
         "--out", tmp_path / "ft", "--epochs", "2", "--max-length", "48", "--device", "cpu"],
        capture_output=True, text=True, env={**ENV, "OMP_NUM_THREADS": "1"}, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count("最良の dev micro-F1") == 1
    summary = json.loads((tmp_path / "ft" / "summary.json").read_text())
    single_process_steps = -(-len(train) // 32) * 2
    assert summary["total_steps"] < single_process_steps  # the batches were shared out
    assert (tmp_path / "ft" / "best" / "model.safetensors").exists()


def test_shinra_official_files_to_submission(tmp_path, tiny_checkpoint, demo_records):
    """Official-format files in → `data shinra` → `train` → `predict --dump` → a scored submission."""
    from solutions.data import write_cirrus_dump, write_shinra_inputs, write_shinra_training_file

    labelled, unlabelled = demo_records[:300], demo_records[300:360]
    write_shinra_training_file(tmp_path / "train_official.jsonl", ((r.page_id, r.title, r.labels) for r in labelled))
    write_shinra_inputs(tmp_path / "leaderboard.jsonl", ((r.page_id, r.title) for r in unlabelled))
    write_cirrus_dump(tmp_path / "cirrus.json.gz", ((r.page_id, r.title, r.text) for r in demo_records[::-1]))
    run("data", "shinra", "--train-file", tmp_path / "train_official.jsonl", "--dump", tmp_path / "cirrus.json.gz",
        "--inputs", tmp_path / "leaderboard.jsonl", "--single-label", "--out", tmp_path / "data")
    train = list(read_jsonl(tmp_path / "data" / "train.jsonl"))
    assert all(len(r.labels) == 1 for r in train)
    run("train", "--train", tmp_path / "data/train.jsonl", "--dev", tmp_path / "data/dev.jsonl",
        "--checkpoint", tiny_checkpoint, "--out", tmp_path / "ft", "--epochs", "1", "--max-length", "48",
        "--device", "cpu")
    run("predict", "--checkpoint", tmp_path / "ft/best", "--input", tmp_path / "leaderboard.jsonl",
        "--dump", tmp_path / "cirrus.json.gz", "--output", tmp_path / "submission.jsonl", "--system", "Tiny",
        "--device", "cpu", "--max-length", "48")
    lines = [json.loads(x) for x in (tmp_path / "submission.jsonl").read_text().splitlines()]
    # Every input page answered once (in the dump's order: the texts are streamed, not held).
    assert sorted((x["page_id"], x["title"]) for x in lines) == sorted((r.page_id, r.title) for r in unlabelled)
    for line in lines:
        ((key, predictions),) = line["ENEs"].items()
        assert key.startswith("AUTO.Tiny.") and len(predictions) >= 1
        assert all(0 <= p["prob"] <= 1 for p in predictions)
    gold = tmp_path / "gold.jsonl"
    write_shinra_training_file(gold, ((r.page_id, r.title, r.labels) for r in unlabelled))
    report = json.loads(run("score", gold, tmp_path / "submission.jsonl").stdout)
    assert report["pages"] == len(unlabelled) and report["label_space"] == "ene"


def test_data_livedoor_from_the_archive(tmp_path, shared_data):
    archive = shared_data / "livedoor" / "ldcc-20140209-train80.tar.gz"
    run("data", "livedoor", "--archive", archive, "--out", tmp_path)
    train, dev = list(read_jsonl(tmp_path / "train.jsonl")), list(read_jsonl(tmp_path / "dev.jsonl"))
    assert len(train) + len(dev) == 5857 and abs(len(dev) - 0.2 * 5857) < 10
    assert len({r.labels[0] for r in train}) == 9
    assert not {r.page_id for r in train} & {r.page_id for r in dev}


@pytest.mark.parametrize("command", ["train", "pretrain", "predict"])
def test_running_out_of_gpu_memory_says_what_to_change(tmp_path, demo_records, monkeypatch, capsys, command):
    """torch's OutOfMemoryError (raised here as a GPU would) becomes advice with the
    command's own settings, not a traceback."""
    from autograder import cli, pipeline

    def out_of_memory(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.50 GiB")

    data = tmp_path / "train.jsonl"
    write_jsonl(data, demo_records[:20])
    args = {"train": ["train", "--train", data, "--dev", data, "--checkpoint", tmp_path, "--batch-size", "48",
                      "--max-length", "384"],
            "pretrain": ["pretrain", "--data", data, "--batch-size", "48", "--max-length", "384"],
            "predict": ["predict", "--checkpoint", tmp_path, "--input", data, "--output", tmp_path / "p.jsonl",
                        "--batch-size", "48", "--max-length", "384"]}[command]
    monkeypatch.setattr(pipeline, {"train": "finetune", "pretrain": "pretrain", "predict": "predict_file"}[command],
                        out_of_memory)
    assert cli.main([str(a) for a in args]) == 1
    err = capsys.readouterr().err
    assert err.startswith("エラー: GPU のメモリが足りません") and "Traceback" not in err
    assert "--batch-size を小さく" in err and "いま 48" in err and "いま 384" in err
    assert ("--resume は保存したときの設定で続ける" in err) == (command == "train")


def test_predict_ends_by_counting_the_lines_it_could_not_read(tmp_path, demo_records):
    """The last words of predict: the pages written, then the input lines left out."""
    ckpt = random_classifier(tmp_path / "ckpt", demo_records, ["a", "b"])
    pages = tmp_path / "pages.jsonl"
    write_jsonl(pages, demo_records[:3])
    with pages.open("a") as f:
        f.write('{"page_id": "x", "title": "t"\n{"title": "no id", "text": "本文"}\n')
    result = run("predict", "--checkpoint", ckpt, "--input", pages, "--output", tmp_path / "p.jsonl",
                 "--device", "cpu")
    assert len((tmp_path / "p.jsonl").read_text().splitlines()) == 3
    assert f"{pages}:4" in result.stderr and f"{pages}:5" in result.stderr
    written = result.stderr.index("3 ページの予測を")
    assert "入力の 2 行は読めなかったので予測していません" in result.stderr[written:]


@pytest.mark.parametrize("damage", [b"", b"garbage\n", b"PK\x03\x04" + b"x" * 100])
def test_a_damaged_resume_state_is_named(tmp_path, damage):
    from solutions.training import TrainingError, load_state

    (tmp_path / "state.pt").write_bytes(damage)
    with pytest.raises(TrainingError, match=r"state\.pt: 学習状態が読めません .*--resume なしで始め直してください"):
        load_state(tmp_path / "state.pt")


def test_predict_goes_on_after_a_bad_line_of_a_shinra_input_file(tmp_path, demo_records):
    """As without --dump: the line is warned about (file and line) and the other pages are predicted."""
    from solutions.data import write_cirrus_dump, write_shinra_inputs

    pages = demo_records[:6]
    ckpt = random_classifier(tmp_path / "ckpt", demo_records, ["1.1", "1.5.1.1"])
    inputs, dump, output = tmp_path / "inputs.jsonl", tmp_path / "dump.json", tmp_path / "submission.jsonl"
    write_shinra_inputs(inputs, ((r.page_id, r.title) for r in pages))
    lines = inputs.read_text(encoding="utf-8").splitlines()
    lines[3] = "{broken"
    inputs.write_text("\n".join(lines) + "\n", encoding="utf-8")
    write_cirrus_dump(dump, ((r.page_id, r.title, r.text) for r in pages))
    result = run("predict", "--checkpoint", ckpt, "--input", inputs, "--dump", dump, "--output", output,
                 "--device", "cpu")
    assert f"警告: {inputs}:4: JSON として読めません" in result.stderr and "この行は使いません" in result.stderr
    answered = [json.loads(line)["page_id"] for line in output.read_text().splitlines()]
    assert answered == [r.page_id for i, r in enumerate(pages) if i != 3]


def test_predict_reads_only_the_fields_it_uses(tmp_path, demo_records, capsys):
    """Labels that are no list do not stop a page from being predicted, and an
    integer page_id is the page's id as the scorer reads it: no page is left out."""
    from autograder import cli

    ckpt = random_classifier(tmp_path / "ckpt", demo_records, ["a", "b"])
    pages, gold, output = tmp_path / "pages.jsonl", tmp_path / "gold.jsonl", tmp_path / "p.jsonl"
    pages.write_text(json.dumps({"page_id": "x1", "title": "t", "text": "本文です。", "labels": "a"}) + "\n"
                     + json.dumps({"page_id": 12, "title": "t", "text": "本文です。"}) + "\n", encoding="utf-8")
    gold.write_text('{"page_id": "x1", "labels": ["a"]}\n{"page_id": 12, "labels": ["b"]}\n')
    assert cli.main(["predict", "--checkpoint", str(ckpt), "--input", str(pages), "--output", str(output),
                     "--device", "cpu"]) == 0
    assert "警告" not in capsys.readouterr().err
    assert [json.loads(line)["page_id"] for line in output.read_text().splitlines()] == ["x1", "12"]
    assert cli.main(["score", str(gold), str(output)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["pages"] == 2 and report["missing_pages"] == 0


def test_a_training_file_with_many_bad_lines_gives_line_warnings_then_a_count(tmp_path, capsys):
    """"(この行は使いません)" is said of lines, not of the summary about the whole file."""
    from autograder.pipeline import read_dataset

    path = tmp_path / "train.jsonl"
    path.write_text("{broken\n" * 25 + json.dumps({"page_id": "1", "text": "本文", "labels": ["a"]}) + "\n")
    assert [r.page_id for r in read_dataset(path, require_labels=True)] == ["1"]
    warnings = capsys.readouterr().err.splitlines()
    assert len(warnings) == 21 and all(w.endswith("(この行は使いません)") for w in warnings[:20])
    assert warnings[20] == f"警告: {path}: ほかに 5 件のエラーがあります"
