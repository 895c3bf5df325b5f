"""What each `bert-workshop` command of the main job does (data → pretrain →
train → predict → score, and the demo that chains them)."""
from __future__ import annotations

import json
import os
import shlex
import sys
import time
from functools import partial
from pathlib import Path

import torch
from tqdm.auto import tqdm

from solutions import data as D
from solutions.finetune import FinetuneSettings, finetune
from solutions.predict import predict_file
from solutions.pretrain import PretrainSettings, page_texts, pretrain

from .paths import refuse_overwriting

MAX_SHOWN_ERRORS = 20


def say(message: str) -> None:
    """A message on stderr, above any progress bar there."""
    tqdm.write(message, file=sys.stderr)


def program() -> str:
    """The command as the user typed it (.venv/bin/bert-workshop works without an
    activated venv); bert-workshop when run as python -m autograder.cli."""
    typed = sys.argv[0] if sys.argv else ""
    return shlex.quote(typed) if os.path.basename(typed) == "bert-workshop" else "bert-workshop"


def command_line(words) -> str:
    """A command of this program that can be pasted into a shell."""
    return " ".join([program(), *(shlex.quote(str(w)) for w in words)])


def suggest_next(*commands: list) -> None:
    """The next step of the main job, as commands that can be pasted (CAPITALS: fill in)."""
    for i, words in enumerate(commands):
        say(("次は: " if i == 0 else "  または: ") + command_line(words))


def read_dataset(path, *, require_labels: bool) -> list:
    """All good records of a JSONL file; bad lines are reported (file:line:field)
    and skipped, so one broken line does not cost the whole data set."""
    records, errors = D.read_records_checked(path, require_labels=require_labels,
                                             max_errors=MAX_SHOWN_ERRORS)
    for error in errors:
        say(f"警告: {error}" + (" (この行は使いません)" if error.line is not None else ""))
    if not records:
        raise D.DataError("使えるレコードが 1 件もありません", path=path)
    return records


def stream_records(path, max_warnings: int = 20, tally: dict | None = None):
    """Records one at a time for prediction; a bad line is reported (the first
    max_warnings one by one, then a count) and skipped. tally["skipped"]: how
    many lines were skipped so far."""
    skipped, no_text = 0, 0
    for item in D.iter_records_or_errors(path, ignore_labels=True):  # predicting needs no labels
        if isinstance(item, D.Record):
            yield item
            continue
        if item.line is None:  # about the whole file (no page in it)
            say(f"警告: {item}")
            continue
        skipped += 1
        if tally is not None:
            tally["skipped"] = skipped
        no_text += item.field == "text"
        if skipped <= max_warnings:
            say(f"警告: {item} (このページは予測しません)")
    if skipped > max_warnings:
        say(f"警告: {path}: ほかに {skipped - max_warnings} 行を読めませんでした (予測しません)")
    if no_text:
        say(f"  本文 ('text') のない行が {no_text} 行あります。森羅の入力ファイルなら --dump で本文のダンプを指定します")


def check_predict_paths(input_path, output_path, dump_path=None) -> None:
    """Before the model is loaded: the input is a file and the output can be one,
    but not one of the files read."""
    if not Path(input_path).exists():
        raise D.DataError("ファイルが見つかりません", path=input_path)
    if Path(input_path).is_dir():
        raise D.DataError("フォルダです。予測するページの JSONL ファイルを指定してください", path=input_path)
    if Path(output_path).is_dir():
        raise D.DataError("フォルダです。出力するファイルの名前を指定してください (例 out/submission.jsonl)",
                          path=output_path)
    refuse_overwriting([("--output", output_path)], [("--input", input_path), ("--dump", dump_path)])


def resume_advice(args, argv: list[str]) -> str:
    """After Ctrl-C: whether this command can go on from where it stopped (argv: its arguments)."""
    command = getattr(args, "command", None)
    if command == "pretrain" and not (Path(args.out) / "config.json").is_file():
        return "モデルは保存されていません"
    if command != "train":
        return ""
    state = Path(args.out) / "last" / "state.pt"
    if state.is_file():
        again = command_line([*(w for w in argv if w != "--resume"), "--resume"])
        return f"最後に保存した状態 ({state}) から再開できます:\n次は: {again}"
    return ("再開用の状態は保存されていません (最初のステップより前に止まったか、2 回目の Ctrl-C で保存せずに"
            "止まりました。状態は Ctrl-C のとき、--save-every ステップごと、エポックの終わりに保存します)")


def write_split(out: Path, records, dev_fraction: float, seed: int) -> dict:
    train, dev = D.split_train_dev(records, dev_fraction=dev_fraction, seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    D.write_jsonl(out / "train.jsonl", train)
    D.write_jsonl(out / "dev.jsonl", dev)
    labels = D.label_set(records)
    say(f"{out}/train.jsonl ({len(train)} 件), {out}/dev.jsonl ({len(dev)} 件), ラベル {len(labels)} 種類")
    if not train or not dev:
        say("警告: train か dev が 0 件です。ページを増やすか --dev-fraction を変えてください")
    return {"train": len(train), "dev": len(dev), "labels": len(labels)}


def check_data_paths(args) -> None:
    """The files `data` writes must not be those it reads (nor one another)."""
    out, given = Path(args.out), vars(args)
    written = [out / "train.jsonl", out / "dev.jsonl"] + [inputs_target(out, p) for p in given.get("inputs", [])]
    read = [(f"--{key.replace('_', '-')}", given.get(key)) for key in ("archive", "train_file", "dump")]
    read += [("--inputs", path) for path in given.get("inputs", [])]
    refuse_overwriting([(f"--out の {path.name}", path) for path in written], read)


def inputs_target(out: Path, inputs) -> Path:
    """Where `data shinra` writes the pages of an --inputs file."""
    return out / f"inputs-{Path(inputs).stem}.jsonl"


def run_data(args) -> int:
    check_data_paths(args)
    out = Path(args.out)
    if args.kind == "demo":
        records = D.make_demo_corpus(n_pages=args.pages, seed=args.seed)
    elif args.kind == "livedoor":
        source = args.archive or D.download_livedoor(Path.home() / ".cache" / "bert-workshop")
        records = D.read_livedoor(source)
    else:
        records = D.read_shinra(args.train_file, args.dump, sample=args.sample,
                                single_label=args.single_label, seed=args.seed)
        for inputs in args.inputs:
            target = inputs_target(out, inputs)
            out.mkdir(parents=True, exist_ok=True)
            D.write_jsonl(target, D.read_shinra_inputs(inputs, args.dump))
            say(f"{target}: ラベル付け対象のページ")
    write_split(out, records, args.dev_fraction, args.seed)
    train, dev = out / "train.jsonl", out / "dev.jsonl"
    suggest_next(["pretrain", "--data", train, "--dev", dev, "--out", "runs/pretrained"],
                 ["train", "--train", train, "--dev", dev, "--checkpoint", "CHECKPOINT", "--out", "runs/finetuned"])
    return 0


def run_pretrain(args) -> int:
    texts = page_texts(r for path in args.data for r in read_dataset(path, require_labels=False))
    dev_texts = page_texts(r for path in args.dev or [] for r in read_dataset(path, require_labels=False))
    settings = PretrainSettings(size=args.size, vocab_size=args.vocab_size, max_length=args.max_length,
                                batch_size=args.batch_size, lr=args.lr,
                                max_steps=args.max_steps or (10**7 if args.minutes else 1000),
                                minutes=args.minutes, mask_prob=args.mask_prob, whole_word_mask=args.whole_word_mask,
                                short_length=args.short_length,
                                short_share=args.short_share, copy_positions=args.copy_positions,
                                shuffle_documents=args.shuffle_documents,
                                eval_every=args.eval_every, seed=args.seed,
                                device=args.device, compile=args.compile)
    summary = pretrain(texts, args.out, settings, dev_texts=dev_texts)
    heldout = (f", 評価用テキストの損失 {summary['dev_loss']:.3f} (マスク位置の正解率 {summary['dev_accuracy']:.1%})"
               if "dev_loss" in summary else "")
    ended = "Ctrl-C で止めました (そこまでのモデルを保存しました)" if summary["interrupted"] else "事前学習が終わりました"
    say(f"{ended}: {summary['steps']} ステップ, 損失 {summary['final_loss']:.3f}{heldout} "
        f"(頻度だけで当てたときの損失 {summary['unigram_loss']:.3f}), {summary['seconds']} 秒 → {args.out}")
    if summary["interrupted"]:
        say(pretrain_interrupted_note(summary, args.max_length))
    suggest_next(["train", "--train", args.data[0] if len(args.data) == 1 else "TRAIN.jsonl",
                  "--dev", args.dev[0] if args.dev and len(args.dev) == 1 else "DEV.jsonl",
                  "--checkpoint", args.out, "--out", "runs/finetuned"])
    return 130 if summary["interrupted"] else 0


def pretrain_interrupted_note(summary: dict, max_length: int) -> str:
    """What a pre-training stopped by Ctrl-C has not done."""
    note = "学習率は下げきっていません。続きから再開する機能はないので、続けるには最初からやり直します"
    if summary["longest_trained_block"] < max_length:
        note += (f"。{max_length} トークンのブロックはまだ学習していないので、"
                 f"{summary['longest_trained_block']} トークンより長い入力はうまく読めません")
    return f"注意: {note}"


def run_train(args) -> int:
    train = read_dataset(args.train, require_labels=True)
    dev = read_dataset(args.dev, require_labels=True)
    settings = FinetuneSettings(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                                max_length=args.max_length, save_every=args.save_every,
                                stop_after_steps=args.stop_after_steps, multi_label=args.multi_label,
                                windows=args.windows, unpad=args.unpad,
                                seed=args.seed, device=args.device, compile=args.compile,
                                cuda_graphs=args.cuda_graphs)
    summary = finetune(train, dev, args.checkpoint, args.out, settings, resume=args.resume,
                       dev_source=args.dev)
    if os.environ.get("RANK", "0") != "0":  # under torchrun, one process reports
        return 0
    if summary["stopped_early"]:
        say(f"{summary['steps']}/{summary['total_steps']} ステップで止めました。--resume で続きから再開できます")
    else:
        say(f"最良の dev micro-F1 {summary['best']['dev_micro_f1']:.2f} (エポック {summary['best']['epoch']})"
            f" → {summary['checkpoint']}")
        suggest_next(["predict", "--checkpoint", summary["checkpoint"], "--input", "PAGES.jsonl",
                      "--output", "submission.jsonl"])
    return 0


def run_predict(args) -> int:
    check_predict_paths(args.input, args.output, args.dump)
    tally = {"skipped": 0}
    if args.dump:
        records, count = D.read_shinra_inputs(args.input, args.dump), partial(D.count_input_pages, args.input)
    else:
        records, count = stream_records(args.input, tally=tally), partial(D.count_nonblank_lines, args.input)
    predict_file(args.checkpoint, records, args.output, output_format=args.format, system=args.system,
                 batch_size=args.batch_size, max_length=args.max_length, device=args.device,
                 threshold=args.threshold, windows=args.windows, unpad=args.unpad, count_pages=count)
    if tally["skipped"]:
        say(f"注意: 入力の {tally['skipped']} 行は読めなかったので予測していません (上の警告)。"
            "採点では、提出にないページは IGNORED (ENE 9) か「ラベルなし」と予測したものとして数えます")
    suggest_next(["score", "GOLD.jsonl", args.output],
                 ["leaderboard", "submit", "--team", "TEAM", args.output])
    return 0


def score_report(gold, prediction, label_space: str = "auto"):
    """The leaderboard scorer's ScoreReport; files with errors are a DataError."""
    from .leaderboard.scorer import InvalidInput, score_files

    try:
        return score_files(gold, prediction, label_space=label_space)
    except InvalidInput as e:
        raise D.DataError(str(e)) from None


def score(gold, prediction, label_space: str = "auto") -> dict:
    return score_report(gold, prediction, label_space).to_dict()


def run_score(args) -> int:
    from .leaderboard.render import format_score_report

    report = score_report(args.gold, args.prediction, args.label_space)
    say(format_score_report(report).rstrip("\n"))  # for people; the JSON on stdout for programs
    print(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
    return 0


def run_demo(args) -> int:
    """The README's main job, end to end, with sizes that suit the machine."""
    import torch

    from solutions.training import pick_device

    out = Path(args.out)
    device = pick_device(args.device)
    gpu = device.type == "cuda"
    started = time.time()

    say("1/5 デモデータを作ります (合成した森羅形式のコーパス)")
    records = D.make_demo_corpus(n_pages=args.pages, seed=args.seed)
    rest, test = D.split_train_dev(records, dev_fraction=0.15, seed=args.seed)
    counts = write_split(out / "data", rest, 0.15, args.seed)
    D.write_shinra_training_file(out / "data" / "test_gold.jsonl", ((r.page_id, r.title, r.labels) for r in test))
    D.write_jsonl(out / "data" / "test_inputs.jsonl",
                  (D.Record(r.page_id, r.title, r.text, []) for r in test))

    say("2/5 事前学習 (MLM) をします (時間予算つき)")
    pre = PretrainSettings(size="small" if gpu else "tiny", vocab_size=8000 if gpu else 4000,
                           max_length=128, batch_size=128 if gpu else 32, lr=5e-4 if gpu else 1e-3,
                           max_steps=10**6, minutes=args.pretrain_minutes or (3.0 if gpu else 1.5),
                           seed=args.seed, device=str(device))
    pretrain(page_texts(read_dataset(out / "data" / "train.jsonl", require_labels=True)),
             out / "pretrained", pre,
             dev_texts=page_texts(read_dataset(out / "data" / "dev.jsonl", require_labels=True)))

    say("3/5 分類器をファインチューニングします (ワークショップと同じく 1 ページ 1 ラベル)")
    fine = FinetuneSettings(epochs=args.epochs or (6 if gpu else 15), batch_size=32,
                            lr=1e-4 if gpu else 1e-3, max_length=128, multi_label=False,
                            seed=args.seed, device=str(device))
    summary = finetune(read_dataset(out / "data" / "train.jsonl", require_labels=True),
                       read_dataset(out / "data" / "dev.jsonl", require_labels=True),
                       out / "pretrained", out / "finetuned", fine)

    say("4/5 テストページを予測して森羅形式の提出ファイルを書きます")
    submission = out / "submission.jsonl"
    predict_file(out / "finetuned" / "best", stream_records(out / "data" / "test_inputs.jsonl"),
                 submission, output_format="shinra", device=str(device), max_length=128)

    say("5/5 採点します")
    report = score(out / "data" / "test_gold.jsonl", submission)
    result = {"test_micro_f1": round(report["f1"], 4), "dev_micro_f1": round(summary["best"]["dev_micro_f1"], 4),
              "majority_baseline_micro_f1": round(majority_baseline(rest, test), 4),
              "pages": {"train": counts["train"], "dev": counts["dev"], "test": len(test)},
              "device": str(device), "seconds": round(time.time() - started, 1),
              "threads": torch.get_num_threads(),
              "artefacts": {"data": str(out / "data"), "pretrained": str(out / "pretrained"),
                            "finetuned": str(out / "finetuned" / "best"),
                            "learning_curve": str(out / "finetuned" / "learning_curve.png"),
                            "submission": str(submission)}}
    (out / "demo_result.json").write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n")
    say(f"\nテストの micro-F1: {result['test_micro_f1']:.4f} "
        f"(多数派クラスだけを答えると {result['majority_baseline_micro_f1']:.4f})")
    for name, path in result["artefacts"].items():
        say(f"  {name}: {path}")
    print(json.dumps(result, ensure_ascii=False))
    return 0


def majority_baseline(train, test) -> float:
    """micro-F1 of always answering the most frequent training label."""
    from collections import Counter

    from solutions.metrics import micro_f1

    majority = Counter(name for r in train for name in r.labels).most_common(1)[0][0]
    return micro_f1([set(r.labels) for r in test], [{majority}] * len(test))["micro_f1"]


def out_of_memory_advice(args) -> str:
    """What to do when the GPU ran out of memory, with this command's own settings."""
    lines = ["GPU のメモリが足りません。"]
    try:
        free, total = torch.cuda.mem_get_info()
        others = total - free - torch.cuda.memory_reserved()
        lines[0] += f" ({torch.cuda.get_device_name()}、全 {total / 2**30:.1f} GiB)"
        if others > 2**30:  # a shared GPU: someone else's process holds part of it
            lines.append(f"  ほかのプロセスが {others / 2**30:.1f} GiB 使っています (nvidia-smi で確かめられます)。")
    except (RuntimeError, AssertionError):  # no CUDA context to ask
        pass
    if getattr(args, "batch_size", None):
        lines.append(f"  --batch-size を小さくしてください (いま {args.batch_size})。半分にすると、"
                     "必要なメモリのうち入力に比例する分がおよそ半分になります。")
    if getattr(args, "max_length", None):
        lines.append(f"  --max-length を短くしても減ります (いま {args.max_length})。")
    if getattr(args, "command", None) == "train":
        lines.append("  --resume は保存したときの設定で続けるので、設定を変えたら --out を変えて最初から学習してください。")
    return "\n".join(lines)
