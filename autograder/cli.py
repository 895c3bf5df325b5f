"""`bert-workshop`: the workshop's commands (data, pretrain, train, predict, score,
demo, leaderboard). Messages are in Japanese; known errors never show a traceback."""
from __future__ import annotations

import argparse
import os
import pickle
import sys
import warnings
from pathlib import Path

import torch
from tqdm.auto import tqdm

import solutions
from solutions.checkpoints import CheckpointError
from solutions.config import SIZES
from solutions.data import DataError, describe_os_error
from solutions.encoding import MIN_WINDOW_LENGTH
from solutions.training import TrainingError

from . import pipeline
from .leaderboard.cli import add_label_space_options
from .cli_messages import (device_name, fraction, parse, positive_float, positive_int, system_name,
                           use_japanese_messages)
from .paths import UsageError


def add_data_commands(sub) -> None:
    p = sub.add_parser("data", help="データセットを共通の JSONL 形式 (train/dev) で用意する")
    kinds = p.add_subparsers(dest="kind", required=True)

    demo = kinds.add_parser("demo", help="埋め込みのデモコーパス (合成データ、オフラインで動く)")
    demo.add_argument("--pages", type=positive_int, default=3000, help="ページ数 (既定 3000)")

    livedoor = kinds.add_parser("livedoor", help="livedoor ニュースコーパス (9 カテゴリ)")
    livedoor.add_argument("--archive", help="ldcc-20140209.tar.gz か展開した text/ ディレクトリ。"
                          "省略時は公式 URL からダウンロード (要ネット接続)")

    shinra = kinds.add_parser("shinra", help="森羅 2022 分類タスクの公式ファイル")
    shinra.add_argument("--train-file", required=True, help="shinra2022_Categorization_train_*.jsonl")
    shinra.add_argument("--dump", required=True, help="CirrusSearch ダンプ (*.json.gz)")
    shinra.add_argument("--inputs", action="append", default=[],
                        help="ラベル付けする入力 (leaderboard/test の JSONL)。複数指定可")
    shinra.add_argument("--sample", type=positive_int, help="無作為に選ぶページ数 (ワークショップは 5000)")
    shinra.add_argument("--single-label", action="store_true", help="複数ラベルのページ (約 3%%) を除く")

    for q in (demo, livedoor, shinra):
        q.add_argument("--out", default="runs/data", help="出力先ディレクトリ (train.jsonl, dev.jsonl)")
        q.add_argument("--dev-fraction", type=fraction, default=0.2, help="dev に回す割合 (既定 0.2)")
        q.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=pipeline.run_data)


def add_pretrain_command(sub) -> None:
    p = sub.add_parser("pretrain", help="MLM で BERT をゼロから事前学習する (語彙もコーパスから学習)")
    p.add_argument("--data", nargs="+", required=True, help="テキストの JSONL ({page_id,title,text,…} の行)")
    p.add_argument("--dev", nargs="+", help="学習に使わない評価用テキストの JSONL。MLM の損失と正解率を記録する")
    p.add_argument("--eval-every", type=positive_int, default=200, help="--dev で評価する間隔 (ステップ。既定 200)")
    p.add_argument("--out", default="runs/pretrained", help="チェックポイントの出力先 (Hugging Face 形式)")
    p.add_argument("--size", default="tiny", choices=list(SIZES), help="モデルの大きさ (既定 tiny)")
    p.add_argument("--vocab-size", type=positive_int, default=8000)
    p.add_argument("--max-length", type=positive_int, default=128)
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--lr", type=positive_float, default=5e-4)
    p.add_argument("--max-steps", type=positive_int, help="ステップ数 (既定 1000。--minutes があれば時間で決める)")
    p.add_argument("--minutes", type=positive_float, help="時間予算 (分)。学習率スケジュールをこれに合わせる")
    p.add_argument("--short-length", type=positive_int,
                   help="はじめは短いブロック (例 128) で学習し、最後に --max-length で仕上げる (BERT と同じやり方)")
    p.add_argument("--short-share", type=fraction, default=0.9, help="短いブロックで学習する割合 (既定 0.9)")
    p.add_argument("--copy-positions", action="store_true",
                   help="長いブロックに移るとき、まだ学習していない位置の埋め込みを学習済みの位置の写しから始める")
    p.add_argument("--shuffle-documents", action=argparse.BooleanOptionalAction, default=True,
                   help="テキストを 1 周するたびに文書の順番を入れ替えてブロックを作り直す (既定: する)")
    p.add_argument("--mask-prob", type=fraction, default=0.15,
                   help="マスクするトークンの割合 (既定 0.15。短い事前学習では 0.3 前後も有効)")
    p.add_argument("--whole-word-mask", action="store_true",
                   help="単語 (MeCab の 1 語) のサブワードをまとめてマスクする (東北大 BERT v3 と同じ)")
    add_common_training_options(p)
    p.set_defaults(func=pipeline.run_pretrain, check_usage=short_length_problem)


def short_length_problem(args) -> str | None:
    if args.short_length and args.short_length >= args.max_length:
        return (f"--short-length ({args.short_length}) は --max-length ({args.max_length}) より短くしてください "
                "(短いブロックで始めて最後に --max-length で仕上げます)")
    return None


def add_train_command(sub) -> None:
    p = sub.add_parser("train", help="チェックポイントから分類器をファインチューニングする")
    p.add_argument("--train", required=True, help="訓練データ JSONL ({page_id,title,text,labels})")
    p.add_argument("--dev", required=True, help="評価データ JSONL (エポックごとに micro-F1 を測る)")
    p.add_argument("--checkpoint", required=True,
                   help="ローカルのディレクトリ (pretrain の出力など) か Hugging Face のモデル ID "
                        "(例 tohoku-nlp/bert-base-japanese-v3、要ネット接続)")
    p.add_argument("--out", default="runs/finetuned", help="出力先 (best/ に最良のチェックポイント)")
    p.add_argument("--epochs", type=positive_int, default=3)
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--lr", type=positive_float, default=5e-5)
    p.add_argument("--max-length", type=positive_int, default=256)
    p.add_argument("--windows", type=positive_int, default=1,
                   help="長いページを最大この数の区間に分けて読む (各区間が 1 例。予測は区間の確率の平均。既定 1: 先頭だけ)")
    p.add_argument("--save-every", type=positive_int, default=200, help="再開用の状態を保存する間隔 (ステップ)")
    p.add_argument("--stop-after-steps", type=positive_int, help="このステップ数で止める (後で --resume で再開)")
    p.add_argument("--multi-label", action=argparse.BooleanOptionalAction, default=None,
                   help="複数ラベル分類にする (省略時は訓練データから判断)")
    p.add_argument("--resume", action="store_true", help="中断した学習を out/last/state.pt から再開する")
    add_common_training_options(p)
    p.add_argument("--cuda-graphs", action="store_true",
                   help="モデル全体をコンパイルし、1 ステップを CUDA グラフとして再生する (GPU 1 枚向け。"
                        "CPU がカーネルを出す手間が消え、H200 で固定長の学習が transformers の 1.4〜1.5 倍、"
                        "短い入力 (タイトル + 第 1 段落) で 2.8 倍 (1 回の測定)。長さは 16 の倍数に揃え、長さごとに"
                        "最初の 2 回でグラフを作ります (最初のコンパイルに 1〜2 分)。--compile を含みます。"
                        "記事全文のような長い入力では --compile が速いことも)")
    add_unpad_option(p)
    p.set_defaults(func=pipeline.run_train, check_usage=train_usage_problem)


def train_usage_problem(args) -> str | None:
    """A checkpoint where train writes (out/best, out/last) would be overwritten while read."""
    checkpoint, out = Path(args.checkpoint).resolve(), Path(args.out).resolve()
    if Path(args.checkpoint).is_dir() and any(checkpoint.is_relative_to(out / name) for name in ("best", "last")):
        return (f"--checkpoint ({args.checkpoint}) は train が --out ({args.out}) に書く場所にあり、学習中に"
                "上書きされます。別の --out を指定してください")
    return windows_problem(args)


def windows_problem(args) -> str | None:
    """encode_records' check, made before any work (train, predict)."""
    if (args.windows or 1) > 1 and args.max_length < MIN_WINDOW_LENGTH:
        return (f"--windows で区間に分けて読むには --max-length が {MIN_WINDOW_LENGTH} 以上必要です "
                f"({args.max_length})")
    return None


def add_predict_command(sub) -> None:
    p = sub.add_parser("predict", help="ページのラベルを予測して提出ファイルを書く")
    p.add_argument("--checkpoint", required=True, help="train の出力 (out/best)")
    p.add_argument("--input", required=True, help="JSONL ({page_id,title,text}) か森羅の入力ファイル")
    p.add_argument("--dump", help="--input が森羅の入力 (本文なし) のときの CirrusSearch ダンプ"
                                  " (本文はダンプの順に読みながら予測するので、出力もダンプの順)")
    p.add_argument("--output", required=True, help="出力 JSONL")
    p.add_argument("--format", default="auto", choices=["auto", "shinra", "simple"],
                   help="shinra: 森羅の提出形式 / simple: {page_id,labels,probs} (既定: ENE なら shinra)")
    p.add_argument("--system", default="MyBERT", type=system_name,
                   help="森羅形式のシステム名 (AUTO.<system>.<yyyyMM>。英数字・'_'・'-')")
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--max-length", type=positive_int, default=256)
    p.add_argument("--windows", type=positive_int, help="長いページを読む区間の数 (既定: train で使った値)")
    p.add_argument("--threshold", type=fraction, default=0.5, help="複数ラベルのしきい値")
    p.add_argument("--device", default="auto", type=device_name, help="auto / cpu / cuda")
    add_unpad_option(p)
    p.set_defaults(func=pipeline.run_predict, check_usage=windows_problem)


def add_score_command(sub) -> None:
    p = sub.add_parser("score", help="予測を正解と比べて micro-F1 を出す (リーダーボードの採点器)",
                       description="提出にない正解ページは IGNORED (ENE 9) と予測したものとして数えます "
                                   "(森羅の公式採点と同じ)。正解にないページ、重複したページ、読めない行は、"
                                   "ファイル名・行・フィールドを示してすべて報告し、採点しません。"
                                   "結果は日本語のまとめを標準エラーに、JSON を標準出力に書きます。")
    p.add_argument("gold", help="正解ファイル (森羅の HAND.* 形式か {page_id,labels})")
    p.add_argument("prediction", help="予測ファイル (森羅の AUTO.* 形式か {page_id,labels})")
    add_label_space_options(p)
    p.set_defaults(func=pipeline.run_score)


def add_demo_command(sub) -> None:
    p = sub.add_parser("demo", help="一連の流れを実行: デモデータ → 事前学習 → ファインチューニング → 予測 → 採点")
    p.add_argument("--out", default="runs/demo", help="成果物の出力先")
    p.add_argument("--pages", type=demo_pages, default=3000,
                   help=f"ページ数 (既定 3000、{DEMO_MIN_PAGES} 以上: 評価用とテスト用に分けても足りるように)")
    p.add_argument("--device", default="auto", type=device_name, help="auto / cpu / cuda")
    p.add_argument("--pretrain-minutes", type=positive_float, help="事前学習の時間予算 (分。既定 CPU 1.5 / GPU 3)")
    p.add_argument("--epochs", type=positive_int, help="ファインチューニングのエポック数 (既定 CPU 15 / GPU 6)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=pipeline.run_demo)


DEMO_MIN_PAGES = 100  # the held-out text of pre-training needs a block of 128 tokens


def demo_pages(text: str) -> int:
    value = positive_int(text)
    if value < DEMO_MIN_PAGES:
        raise argparse.ArgumentTypeError(f"{DEMO_MIN_PAGES} 以上にしてください ({text}): "
                                         "dev・テスト・事前学習の評価用に分けるとページが足りません")
    return value


def add_common_training_options(p) -> None:
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", type=device_name, help="auto (GPU があれば使う) / cpu / cuda")
    p.add_argument("--compile", action="store_true",
                   help="各層を torch.compile する (GPU 向け。H200 では固定長や記事全文の学習が 1.1〜1.45 倍になり、"
                        "短い入力 (タイトル + 第 1 段落) ではかえって遅くなりました: 0.83〜0.87 倍)")


def add_unpad_option(p) -> None:
    p.add_argument("--unpad", action="store_true",
                   help="[PAD] を計算から除く (文を詰めて並べ、注意は文ごとに入れ子テンソルで計算。結果は同じ。"
                        "ただし H200 では、長さでまとめたバッチ (98%% 前後が本物のトークン) を詰めないほうが速い結果でした)")


def build_parser() -> argparse.ArgumentParser:
    use_japanese_messages()  # before the parsers are made: their headings are translated then
    parser = argparse.ArgumentParser(
        prog="bert-workshop",
        description="BERT ワークショップ: データ準備、事前学習、ファインチューニング、予測、採点、リーダーボード",
        epilog="終了コード: 0 成功 / 1 ファイル・チェックポイント・デバイスの問題で止まった / 2 使い方の誤り / "
               "130 Ctrl-C で中断")
    sub = parser.add_subparsers(dest="command", required=True)
    add_data_commands(sub)
    add_pretrain_command(sub)
    add_train_command(sub)
    add_predict_command(sub)
    add_score_command(sub)
    add_demo_command(sub)
    from .book import register as register_book
    from .grading import register as register_autograde
    from .leaderboard.cli import register as register_leaderboard
    from .notebooks import register as register_release
    register_leaderboard(sub)
    register_release(sub)
    register_autograde(sub)
    register_book(sub)
    return parser


OUR_CODE = (str(Path(solutions.__file__).parent), str(Path(__file__).parent))  # where our warnings come from


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Python's warnings, above any progress bar; ours (already in Japanese) as
    plain messages, others (PyTorch, transformers) with their source as usual."""
    if issubclass(category, UserWarning) and str(filename).startswith(OUR_CODE):
        text = f"警告: {message}"
    else:
        text = warnings.formatwarning(message, category, filename, lineno, line).rstrip("\n")
    tqdm.write(text, file=file or sys.stderr)


EXIT_FAILED = 1  # a file, a checkpoint or the device stopped the command
EXIT_USAGE = 2  # a usage error (argparse's, or a UsageError)


def main(argv=None) -> int:
    try:
        args = parse(build_parser(), argv)  # (imports the graders' modules: Ctrl-C may come here)
    except KeyboardInterrupt:
        print("\n中断しました。", file=sys.stderr)
        return 130
    try:
        with warnings.catch_warnings():
            warnings.showwarning = show_warning
            return args.func(args) or 0
    except torch.cuda.OutOfMemoryError:  # (newer torch also names it torch.OutOfMemoryError)
        print(f"エラー: {pipeline.out_of_memory_advice(args)}", file=sys.stderr)
        return EXIT_FAILED
    except UsageError as e:  # arguments that cannot work together, found before any work
        print(f"エラー: {e}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `bert-workshop score … | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # what is left to flush goes nowhere
        return 0
    except (ValueError, TrainingError, OSError, pickle.UnpicklingError) as e:
        if os.environ.get("BERT_WORKSHOP_TRACEBACK"):
            raise
        print(f"エラー: {error_message(e)}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"\n中断しました。{pipeline.resume_advice(args, sys.argv[1:] if argv is None else argv)}",
              file=sys.stderr)
        return 130


def error_message(e: Exception) -> str:
    """What went wrong, for the user: our own errors as they are; others with how to see more."""
    if isinstance(e, (DataError, CheckpointError, TrainingError)):
        return str(e)
    if isinstance(e, OSError):
        what = describe_os_error(e)
        return f"{e.filename}: {what}" if e.filename else what
    return f"{e} (BERT_WORKSHOP_TRACEBACK=1 を付けて実行すると詳しい場所が出ます)"


if __name__ == "__main__":
    sys.exit(main())
