"""The synthetic demo corpus: deterministic, SHINRA-like, and not solvable by keywords."""
from collections import Counter

import pytest

from solutions import ene
from solutions.data import DEMO_CATEGORIES, make_demo_corpus, read_jsonl, split_train_dev, write_jsonl


@pytest.fixture(scope="module")
def corpus():
    return make_demo_corpus()


def test_deterministic_under_seed(corpus):
    assert make_demo_corpus(seed=0) == corpus
    other = make_demo_corpus(seed=1)
    assert [r.text for r in other] != [r.text for r in corpus]


def test_size_categories_and_multi_labels(corpus):
    assert len(corpus) >= 3000
    labels = Counter(label for r in corpus for label in r.labels)
    assert len(labels) >= 12 and set(labels) == set(DEMO_CATEGORIES)
    assert min(labels.values()) >= 60  # every category has enough pages to learn from
    n_multi = sum(len(r.labels) > 1 for r in corpus)
    assert 0.01 * len(corpus) <= n_multi <= 0.05 * len(corpus)
    assert all(len(set(r.labels)) == len(r.labels) for r in corpus)


def test_titles_and_page_ids_are_unique(corpus):
    assert len({r.title for r in corpus}) == len(corpus)
    assert len({r.page_id for r in corpus}) == len(corpus)
    assert all(r.page_id.isdigit() for r in corpus)


def test_pages_are_filled_in_japanese_prose(corpus):
    for r in corpus:
        assert r.title and r.text.endswith("。")
        assert "{" not in r.text and "}" not in r.text
        assert r.text.count("。") >= 2
    lengths = sorted(len(r.text) for r in corpus)
    assert lengths[len(lengths) // 2] >= 80


def test_pages_vary(corpus):
    leads = Counter(r.text.split("。")[0].replace(r.title, "") for r in corpus)
    assert len(leads) > len(corpus) // 2  # lead sentences are not a handful of fixed strings


def test_other_sizes_and_round_trip(tmp_path):
    small = make_demo_corpus(n_pages=200, seed=7)
    assert len(small) == 200 and len({r.title for r in small}) == 200
    write_jsonl(tmp_path / "demo.jsonl", small)
    assert list(read_jsonl(tmp_path / "demo.jsonl", require_labels=True)) == small


def assert_demo_labels_are_leaves_of(hierarchy):
    for ene_id, category in DEMO_CATEGORIES.items():
        assert ene_id in hierarchy.leaves(), ene_id
        assert hierarchy.name(ene_id) == category.name


def test_labels_are_ene_v9_leaves():
    assert_demo_labels_are_leaves_of(ene.default_hierarchy())


def test_labels_are_leaves_of_the_official_ene_file(shared_data):
    path = shared_data / "ene" / ene.OFFICIAL_FILENAME
    if not path.exists():
        pytest.skip(f"{path} がありません")
    assert_demo_labels_are_leaves_of(ene.load_hierarchy(path))


@pytest.mark.slow
def test_keyword_model_is_good_but_not_perfect(corpus):
    """A bag-of-character-n-grams logistic regression lands well above chance, well below 100."""
    text = pytest.importorskip("sklearn.feature_extraction.text")
    linear = pytest.importorskip("sklearn.linear_model")
    train, dev = split_train_dev(corpus, 0.2, seed=0)
    vectorizer = text.TfidfVectorizer(analyzer="char", ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    features = vectorizer.fit_transform([r.title + " " + r.text for r in train])
    model = linear.SGDClassifier(loss="log_loss", alpha=1e-5, max_iter=10, tol=None, random_state=0)
    model.fit(features, [r.labels[0] for r in train])
    predictions = model.predict(vectorizer.transform([r.title + " " + r.text for r in dev]))
    true_positives = sum(p in r.labels for p, r in zip(predictions, dev))
    gold = sum(len(r.labels) for r in dev)
    micro_f1 = 100 * 2 * true_positives / (len(predictions) + gold)
    print(f"bag-of-words micro-F1 = {micro_f1:.2f}")
    assert 80 <= micro_f1 <= 95
