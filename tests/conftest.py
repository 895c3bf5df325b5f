import io
import os
import signal
import tarfile
from pathlib import Path

import pytest
import torch

# Started in the background (`nohup make test &`), the tests would inherit an ignored
# SIGINT, and the Ctrl-C tests (a real SIGINT, in-process and to child commands) could
# not work: give this process, and so the commands it starts, Ctrl-C as a terminal does.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("BERT_WORKSHOP_DATA", ROOT.parent / "shared" / "data"))

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"実データ {SHARED_DATA} がありません (../shared/data を置くと実行されます)")
    return SHARED_DATA


@pytest.fixture
def tiny_pretrained(tmp_path):
    """save(tokenizer) -> a directory holding a randomly initialised tiny MLM BERT and
    the tokenizer, in the layout `train` reads a pre-trained checkpoint from."""
    from solutions.checkpoints import save_model
    from solutions.config import BertConfig
    from solutions.models import BertForMaskedLM

    def save(tokenizer, directory=tmp_path / "pre"):
        torch.manual_seed(0)
        config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                            num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
        return save_model(BertForMaskedLM(config), directory, tokenizer)
    return save


@pytest.fixture
def livedoor_archive():
    """write(path, n_pages) -> demo pages written as a livedoor archive (URL, date, title,
    body; a folder per label), for what reads ../shared/data's livedoor corpus."""
    from solutions.data import make_demo_corpus

    def write(path: Path, n_pages: int = 240) -> Path:
        records = make_demo_corpus(n_pages=n_pages, seed=3)
        labels = sorted({r.labels[0] for r in records})
        categories = {label: "cat-" + "abcdefghijklmnopqrstuvwxyz"[i] for i, label in enumerate(labels)}
        with tarfile.open(path, "w:gz") as tar:
            for i, r in enumerate(records):
                category = categories[r.labels[0]]
                data = f"http://example.com/{i}\n2012-01-01T09:00:00+0900\n{r.title}\n{r.text}\n".encode()
                info = tarfile.TarInfo(f"text/{category}/{category}-{i}.txt")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return path
    return write
