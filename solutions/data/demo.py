"""A synthetic SHINRA-style corpus: the workshop's default data, made offline.

Each page is a Wikipedia-style Japanese lead paragraph about an invented
entity ("○○（よみ）は、…である。…"), labeled with one leaf of the ENE v9
hierarchy (a few pages carry two). Names, templates and word lists are our
own; nothing is taken from Wikipedia.

To keep the task from being solvable by one keyword, some pages are stubs
whose sentences are shared by a whole group of categories (places,
organizations, works, animals), names reuse the same morphemes across
categories (a company named after a town, a film titled with a person's
name), and facts mention entities of other categories ("...を流れる○○川").
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable

from .records import Record

STUB_RATE = 0.25  # share of single-label pages written as group-level stubs
MULTI_LABEL_RATE = 0.025  # share of pages with two labels


# ---------------------------------------------------------------- word lists


def _words(spec: str) -> list[tuple[str, str]]:
    """``"青:あお 赤:あか"`` -> ``[("青", "あお"), ("赤", "あか")]`` (written form, reading)."""
    return [tuple(item.split(":")) for item in spec.split()]


# Place names and surnames share their morphemes, as they do in Japan.
FIRST = _words(
    "青:あお 赤:あか 白:しら 黒:くろ 北:きた 南:みなみ 東:ひがし 西:にし 大:おお 小:こ 高:たか 中:なか "
    "上:かみ 下:しも 若:わか 古:ふる 松:まつ 杉:すぎ 竹:たけ 梅:うめ 桜:さくら 藤:ふじ 菊:きく 柳:やなぎ "
    "石:いし 岩:いわ 金:かね 玉:たま 星:ほし 月:つき 朝:あさ 霧:きり 雪:ゆき 花:はな 鶴:つる 亀:かめ "
    "鷹:たか 鹿:しか 熊:くま 三:み 千:ち 八:や 宮:みや 長:なが 広:ひろ 深:ふか 早:はや 清:きよ 富:とみ "
    "福:ふく 稲:いな 榎:えの 栗:くり 桐:きり 芦:あし 萩:はぎ 楠:くす"
)
SECOND = _words(
    "田:た 川:かわ 山:やま 野:の 原:はら 沢:さわ 井:い 崎:さき 浜:はま 島:しま 岡:おか 谷:たに 森:もり "
    "木:き 瀬:せ 浦:うら 尾:お 坂:さか 橋:はし 本:もと 村:むら 里:さと 江:え 津:つ 戸:と 根:ね 丘:おか "
    "台:だい 久保:くぼ ヶ丘:がおか 見:み 葉:ば 城:しろ 倉:くら 淵:ぶち"
)
GIVEN_HEAD_M = _words(
    "健:けん 翔:しょう 大:だい 拓:たく 浩:こう 直:なお 雅:まさ 和:かず "
    "陽:よう 亮:りょう 俊:しゅん 悠:ゆう 康:やす 信:のぶ 龍:りゅう 正:まさ"
)
GIVEN_TAIL_M = _words("太:た 介:すけ 一:いち 平:へい 人:と 也:や 斗:と 吾:ご 樹:き 郎:ろう 彦:ひこ")
GIVEN_HEAD_F = _words("美:み 彩:あや 真:ま 由:ゆ 奈:な 結:ゆ 紗:さ 千:ち 愛:あい 莉:り 葉:は 早:さ 詩:し")
GIVEN_TAIL_F = _words("子:こ 香:か 奈:な 希:き 穂:ほ 里:り 代:よ 緒:お 衣:い 乃:の 恵:え")
KANA_SYLLABLES = "ア カ サ タ ナ ハ マ ヤ ラ ワ ミ リ ル レ ロ ソ ノ ト キ ス セ ヴェ フィ ティ ルナ ディ".split()

PREFECTURES = (
    "青森県 岩手県 宮城県 秋田県 山形県 福島県 茨城県 栃木県 群馬県 新潟県 富山県 長野県 岐阜県 静岡県 "
    "三重県 滋賀県 兵庫県 岡山県 広島県 山口県 香川県 愛媛県 高知県 福岡県 熊本県 宮崎県 鹿児島県"
).split()
SEAS = "日本海 太平洋 瀬戸内海 東シナ海 オホーツク海".split()
DIRECTIONS = "北 南 東 西 北東 北西 南東 南西 中央".split()
REGIONS = "東北 北陸 甲信越 東海 近畿 中国 四国 九州".split()
ABROAD = "シベリア 大陸 東南アジア 朝鮮半島 オーストラリア".split()

OCCUPATIONS = (
    "俳優 女優 小説家 詩人 政治家 画家 陸上競技選手 プロ野球選手 サッカー選手 作曲家 漫画家 実業家 歌手 "
    "映画監督 落語家 建築家 物理学者 植物学者 医師 料理研究家 写真家 声優 脚本家"
).split()
HOBBIES = "釣り 将棋 登山 料理 写真 囲碁 書道 ピアノ 野鳥観察 鉄道旅行 映画鑑賞 読書".split()
INDUSTRIES = "農業 漁業 製紙業 観光業 果樹栽培 窯業 林業 酪農 織物業 造船業 酒造業".split()
TREES = "マツ スギ ケヤキ クスノキ イチョウ サクラ".split()
FLOWERS = "ツツジ ユリ キキョウ アジサイ スイセン ナノハナ コスモス リンドウ".split()
COLORS = "赤 青 緑 黄 白 黒 紺 橙 茶 灰".split()
SEASONS = "春 夏 秋 冬".split()
SPORTS = "サッカー 野球 バスケットボール バレーボール ラグビー ハンドボール アイスホッケー フットサル".split()
MASCOTS = (
    "レッドスターズ ブルーウェーブ サンダーズ フェニックス ファルコンズ マリナーズ ウォリアーズ ブレイズ "
    "ユナイテッド ロケッツ グリフィンズ スパークス"
).split()
COMPANY_KINDS = _words(
    "製作所:せいさくしょ 電機:でんき 工業:こうぎょう 製薬:せいやく 食品:しょくひん 化学:かがく 精機:せいき "
    "紡績:ぼうせき 建設:けんせつ 商事:しょうじ 運輸:うんゆ 製紙:せいし 酒造:しゅぞう 印刷:いんさつ 電鉄:でんてつ "
    "銀行:ぎんこう 物産:ぶっさん 興業:こうぎょう"
)
BUSINESSES = (
    "電機メーカー 食品メーカー 製薬会社 化学メーカー 建設会社 総合商社 地方銀行 鉄道会社 出版社 映画会社 "
    "ゲーム会社 繊維メーカー 酒造メーカー 運送会社 精密機器メーカー"
).split()
PRODUCTS = "家庭用冷蔵庫 業務用洗剤 缶詰 医療用医薬品 合成樹脂 包装資材 乳製品 精密部品 清酒 電子部品 冷凍食品".split()
PARTY_WORDS = _words(
    "新:しん 国民:こくみん 市民:しみん 自由:じゆう 民主:みんしゅ 改革:かいかく 未来:みらい 緑の:みどりの "
    "平和:へいわ 地域:ちいき 希望:きぼう 協和:きょうわ 進歩:しんぽ 公正:こうせい 生活:せいかつ 共生:きょうせい"
)
IDEOLOGIES = "地方分権 環境保護 行政改革 社会福祉の充実 保守主義 自由主義 農業振興 教育の無償化".split()
SCHOOL_KINDS = _words(
    "大学:だいがく 工業大学:こうぎょうだいがく 医科大学:いかだいがく 農業大学:のうぎょうだいがく "
    "外国語大学:がいこくごだいがく 教育大学:きょういくだいがく 芸術大学:げいじゅつだいがく "
    "高等学校:こうとうがっこう 短期大学:たんきだいがく 学園大学:がくえんだいがく"
)
FACULTIES = "文 法 経済 理 工 農 医 教育 薬 看護 国際 情報".split()
OLD_SCHOOLS = "裁縫女学校 商業学校 師範学校 英語塾 工業学校 農学校".split()
CLUBS = "野球 吹奏楽 陸上競技 ラグビー 合唱 将棋 サッカー 書道".split()
MOTTOS = "自主・協調・創造 質実剛健 至誠 和敬 誠実・勤勉 自律と共生".split()
STATION_PARTS = _words(
    "前:まえ 口:ぐち 中央:ちゅうおう 北:きた 南:みなみ "
    "本町:ほんまち 温泉:おんせん 公園:こうえん 大学前:だいがくまえ 港:みなと"
)
PLATFORMS = "単式ホーム1面1線 相対式ホーム2面2線 島式ホーム1面2線 島式ホーム2面4線".split()
STATION_TYPES = "地上駅 高架駅 地下駅 橋上駅".split()
MOUNTAIN_KINDS = _words("岳:だけ 山:やま ヶ岳:がたけ 峰:みね 森:もり 山:さん")
WORK_NOUNS = (
    "夏 海 雪 約束 手紙 灯台 坂道 星空 記憶 庭 鐘 風 港 列車 帰り道 影 秘密 時計 夜明け 雨 街 少年 少女 "
    "旅人 花火 硝子 川 山 駅 病 食卓 鳥"
).split()
WORK_ADJECTIVES = "遠い 青い 小さな 最後の 静かな 眠れない 名もなき 白い 忘れられた 永遠の".split()
WORK_STORIES = "物語 慕情 行進曲 夜話 日記 奇譚 協奏曲 年代記".split()
MOVIE_GENRES = "アニメーション ドキュメンタリー 時代劇 恋愛 サスペンス 青春 ホラー コメディ".split()
BOOK_GENRES = "長編小説 短編小説集 随筆集 詩集 学術書 推理小説 歴史小説 児童文学作品 評論".split()
LANGUAGES = "英語 中国語 韓国語 フランス語 ドイツ語 スペイン語".split()
ROLES = "少年 少女 老漁師 新人教師 刑事 医師 料理人 駅員 登山家".split()
DREAMS = "画家 歌手 医師 料理人 野球選手 小説家".split()
CATCHPHRASES = (
    "この夏、君に会いに行く。 すべては一通の手紙から始まった。 "
    "泣いてもいい、前を向け。 その町には秘密がある。"
).split()
INGREDIENTS = "鮭 鯖 鯛 鰯 牡蠣 大根 里芋 豆腐 茄子 南瓜 鶏肉 豚肉 牛すじ 山菜 筍 栗 昆布 蕎麦".split()
DISH_KINDS = _words(
    "焼き:やき 汁:じる 鍋:なべ 寿司:ずし 漬け:づけ そば:そば "
    "うどん:うどん 丼:どん 餅:もち 揚げ:あげ 煮:に 飯:めし"
)
METHODS = "煮込んで 炒めて 焼いて 蒸して 揚げて 和えて".split()
SEASONINGS = "醤油 味噌 塩 酢 酒粕 砂糖 魚醤".split()
BODY_PARTS = _words(
    "胃:い 腸:ちょう 肝:かん 腎:じん 肺:はい 皮膚:ひふ "
    "関節:かんせつ 気管支:きかんし 角膜:かくまく 中耳:ちゅうじ 膵:すい 心筋:しんきん"
)
DISEASE_KINDS = _words("炎:えん 症:しょう 硬化症:こうかしょう 萎縮症:いしゅくしょう")
SYMPTOMS = "発熱 頭痛 関節の痛み 皮膚の発疹 咳 倦怠感 視力の低下 腹痛 手足のしびれ めまい".split()
CAUSES = "ウイルス感染 遺伝子の変異 自己免疫の異常 細菌感染 生活習慣 寄生虫".split()
TREATMENTS = "抗生物質 ステロイド薬 外科手術 安静と水分補給 免疫抑制剤 食事療法".split()
ANIMAL_PREFIXES = (
    "ニホン オオ コ アカ クロ シロ ヤマ ミヤマ キタ "
    "ミナミ ヒメ ホソ シマ トゲ ハイイロ キイロ アオ エゾ"
).split()
MAMMAL_BASES = (
    "ネズミ モグラ コウモリ ジカ イタチ テン ザル "
    "ウサギ カモシカ リス ムササビ ヤマネ タヌキ アナグマ"
).split()
BIRD_BASES = "ドリ ガラ ヒタキ ツグミ サギ ガモ ウグイス ホオジロ セキレイ ワシ タカ ゲラ ヒバリ ツバメ シギ".split()
NEUTRAL_ANIMAL_BASES = "ハヤ コロ ナキ ヨル モリ タキ ヤブ ミズ".split()
MAMMAL_ORDERS = "齧歯 食肉 翼手 鯨偶蹄 霊長 兎形 真無盲腸".split()
BIRD_ORDERS = "スズメ タカ ペリカン チドリ キツツキ カモ フクロウ".split()
GENUS_STEMS = "Aca Bor Cal Dor Erin Fal Gla Hel Lut Mor Nyx Pal Ror Sor Tal Vel Kir Yam".split()
MAMMAL_GENUS_ENDS = "omys ictis otis ulus".split()
BIRD_GENUS_ENDS = "ornis icola iza ilus".split()
NEUTRAL_GENUS_ENDS = "ia us ops".split()
EPITHETS = "japonica minor major rubra nigra alba borealis montana orientalis silvestris".split()
BIRD_CALLS = "チーチー ピリリ ホーホー キョキョ ツツピー ジュクジュク".split()
MIGRATIONS = "夏鳥 冬鳥 留鳥 旅鳥".split()
ANIMAL_FOODS = "木の実や昆虫 草の葉や樹皮 小型の哺乳類や鳥の卵 果実やミミズ".split()
NAME_ORIGINS = "アイヌ語 古い地形の呼び名 付近の寺の名 平安時代の荘園名 湧き水".split()
BLOOD_TYPES = "A B O AB".split()


# ---------------------------------------------------------------- names


@dataclass
class Name:
    """An entity's title, its reading (None for katakana names) and extra slots."""

    title: str
    yomi: str | None = None
    slots: dict = field(default_factory=dict)


def _join(rng: random.Random, *parts: list[tuple[str, str]]) -> Name:
    """A name made by picking one (written, reading) pair from each list."""
    picked = [rng.choice(p) for p in parts]
    return Name("".join(w for w, _ in picked), "".join(r for _, r in picked))


def place_name(rng) -> Name:
    return _join(rng, FIRST, SECOND)


def person_name(rng) -> Name:
    surname = place_name(rng)  # surnames come from place names, as in Japan
    head, tail = (GIVEN_HEAD_M, GIVEN_TAIL_M) if rng.random() < 0.6 else (GIVEN_HEAD_F, GIVEN_TAIL_F)
    given = _join(rng, head, tail)
    return Name(surname.title + given.title, f"{surname.yomi} {given.yomi}", {"given": given.title})


def kana_word(rng) -> Name:
    """An invented katakana word (brand, club or nickname)."""
    return Name("".join(rng.choice(KANA_SYLLABLES) for _ in range(rng.randint(2, 4))))


def city_name(rng) -> Name:
    place = place_name(rng)
    kind, reading = rng.choice([("市", "し")] * 3 + [("町", "まち"), ("町", "ちょう"), ("村", "むら")])
    return Name(place.title + kind, place.yomi + reading, {"kind": kind})


def _place_without(rng, suffix: str) -> Name:
    """A place name that does not end in ``suffix`` (no "宮川川")."""
    return _join(rng, FIRST, [s for s in SECOND if s[0] != suffix])


def river_name(rng) -> Name:
    base = _place_without(rng, "川") if rng.random() < 0.6 else _join(rng, FIRST)
    return Name(base.title + "川", base.yomi + "がわ")


def mountain_name(rng) -> Name:
    return _join(rng, FIRST, MOUNTAIN_KINDS)


def island_name(rng) -> Name:
    base = _place_without(rng, "島") if rng.random() < 0.4 else _join(rng, FIRST)
    return Name(base.title + "島", base.yomi + rng.choice(["しま", "じま"]))


def station_name(rng) -> Name:
    base = place_name(rng)
    if rng.random() < 0.35:
        part = rng.choice(STATION_PARTS)
        base = Name(base.title + part[0], base.yomi + part[1])
    return Name(base.title + "駅", base.yomi + "えき")


def school_name(rng) -> Name:
    base = place_name(rng)
    kind, reading = rng.choice(SCHOOL_KINDS)
    school_kind = "高等学校" if kind == "高等学校" else "短期大学" if kind == "短期大学" else "大学"
    return Name(base.title + kind, base.yomi + reading, {"school_kind": school_kind})


def company_name(rng) -> Name:
    base = place_name(rng) if rng.random() < 0.8 else kana_word(rng)
    kind, reading = rng.choice(COMPANY_KINDS)
    return Name(base.title + kind, base.yomi and base.yomi + reading)


def team_name(rng) -> Name:
    style = rng.random()
    if style < 0.6:
        return Name(place_name(rng).title + rng.choice(MASCOTS))
    if style < 0.8:
        return Name("FC" + place_name(rng).title)
    return Name(company_name(rng).title + rng.choice(SPORTS) + "部")


def party_name(rng) -> Name:
    if rng.random() < 0.2:
        place = place_name(rng)
        return Name(place.title + "維新の会", place.yomi + "いしんのかい")
    first, second = rng.sample(PARTY_WORDS, 2)
    return Name(first[0] + second[0] + "党", first[1] + second[1] + "とう")


def work_title(rng) -> Name:
    """A title for a film or a book (both use the same patterns)."""
    noun, other = rng.sample(WORK_NOUNS, 2)
    patterns = [
        lambda: f"{noun}の{other}",
        lambda: f"{rng.choice(WORK_ADJECTIVES)}{noun}",
        lambda: f"{place_name(rng).title}{rng.choice(WORK_STORIES)}",
        lambda: person_name(rng).title,
        lambda: f"{person_name(rng).slots['given']}の{noun}",
        lambda: f"{station_name(rng).title}の{noun}",
    ]
    return Name(rng.choice(patterns)())


def dish_name(rng) -> Name:
    base = place_name(rng) if rng.random() < 0.5 else Name(*rng.choice([(i, None) for i in INGREDIENTS]))
    kind, reading = rng.choice(DISH_KINDS)
    return Name(base.title + kind, base.yomi and base.yomi + reading)


def disease_name(rng) -> Name:
    style = rng.random()
    if style < 0.3:
        surname = place_name(rng)
        return Name(surname.title + "病", surname.yomi + "びょう")
    if style < 0.55:
        place = place_name(rng)
        return Name(place.title + "熱", place.yomi + "ねつ")
    if style < 0.7:
        return Name(kana_word(rng).title + "症候群")
    (body, body_yomi), (kind, kind_yomi) = rng.choice(BODY_PARTS), rng.choice(DISEASE_KINDS)
    acute = rng.random() < 0.3
    name = Name(("急性" if acute else "") + body + kind, ("きゅうせい" if acute else "") + body_yomi + kind_yomi)
    name.slots["body"] = body
    return name


def _animal_name(rng, bases, genus_ends) -> Name:
    latin = f"{rng.choice(GENUS_STEMS)}{rng.choice(genus_ends)} {rng.choice(EPITHETS)}"
    return Name(rng.choice(ANIMAL_PREFIXES) + rng.choice(bases), None, {"latin": latin})


def mammal_name(rng) -> Name:
    return _animal_name(rng, MAMMAL_BASES, MAMMAL_GENUS_ENDS)


def bird_name(rng) -> Name:
    return _animal_name(rng, BIRD_BASES, BIRD_GENUS_ENDS)


def neutral_animal_name(rng) -> Name:
    """A species name that tells nothing about mammal or bird."""
    return _animal_name(rng, NEUTRAL_ANIMAL_BASES, NEUTRAL_GENUS_ENDS)


def neutral_org_name(rng) -> Name:
    """An organization name that tells nothing about what it organizes."""
    return Name(kana_word(rng).title + rng.choice(["", "の会", "ネット", "21"]))


# ---------------------------------------------------------------- template slots


def _choice(words: list[str]) -> Callable[[random.Random], str]:
    return lambda rng: rng.choice(words)


def _number(low: int, high: int) -> Callable[[random.Random], str]:
    def make(rng):
        return f"{rng.randint(low, high):,}"
    make.fresh = True  # a new number at each use, unlike names
    return make


def _year(low: int, high: int) -> Callable[[random.Random], str]:
    def make(rng):
        return str(rng.randint(low, high))
    make.fresh = True
    return make


def _title(make_name: Callable[[random.Random], Name]) -> Callable[[random.Random], str]:
    return lambda rng: make_name(rng).title


SLOT_MAKERS: dict[str, Callable[[random.Random], str]] = {
    "pref": _choice(PREFECTURES), "sea": _choice(SEAS), "dir": _choice(DIRECTIONS), "region": _choice(REGIONS),
    "abroad": _choice(ABROAD),
    "occupation": _choice(OCCUPATIONS), "hobby": _choice(HOBBIES),
    "industry": _choice(INDUSTRIES), "tree": _choice(TREES), "flower": _choice(FLOWERS), "color": _choice(COLORS),
    "season": _choice(SEASONS), "sport": _choice(SPORTS), "business": _choice(BUSINESSES),
    "product": _choice(PRODUCTS), "ideology": _choice(IDEOLOGIES), "faculty": _choice(FACULTIES),
    "old_school": _choice(OLD_SCHOOLS), "club": _choice(CLUBS), "motto": _choice(MOTTOS),
    "platform": _choice(PLATFORMS), "station_type": _choice(STATION_TYPES), "movie_genre": _choice(MOVIE_GENRES),
    "book_genre": _choice(BOOK_GENRES), "language": _choice(LANGUAGES), "role": _choice(ROLES),
    "dream": _choice(DREAMS), "catchphrase": _choice(CATCHPHRASES), "ingredient": _choice(INGREDIENTS),
    "method": _choice(METHODS), "seasoning": _choice(SEASONINGS), "symptom": _choice(SYMPTOMS),
    "cause": _choice(CAUSES), "treatment": _choice(TREATMENTS), "mammal_order": _choice(MAMMAL_ORDERS),
    "bird_order": _choice(BIRD_ORDERS), "bird_call": _choice(BIRD_CALLS), "migration": _choice(MIGRATIONS),
    "animal_food": _choice(ANIMAL_FOODS), "origin": _choice(NAME_ORIGINS), "blood": _choice(BLOOD_TYPES),
    "noun": _choice(WORK_NOUNS), "body": lambda rng: rng.choice(BODY_PARTS)[0],
    "year": _year(1950, 2022), "early_year": _year(1872, 1949), "birth_year": _year(1930, 2001),
    "month": _number(1, 12), "day": _number(1, 28), "n1": _number(2, 9), "n2": _number(10, 99),
    "n3": _number(100, 999), "n4": _number(1000, 9999), "age": _number(45, 98), "minutes": _number(78, 165),
    "pop": _number(2000, 450000), "small_pop": _number(40, 3000),
    "height": _number(320, 2990), "km": _number(5, 260), "area": _number(12, 980), "cm": _number(150, 192),
    "place": _title(place_name), "person": _title(person_name), "city": _title(city_name),
    "river": _title(river_name), "mountain": _title(mountain_name), "island": _title(island_name),
    "station": _title(station_name), "school": _title(school_name), "company": _title(company_name),
    "team": _title(team_name), "party": _title(party_name), "work": _title(work_title),
    "dish": _title(dish_name), "disease": _title(disease_name), "bird": _title(bird_name),
    "kana": _title(kana_word), "given": lambda rng: person_name(rng).slots["given"],
    "range": lambda rng: rng.choice(FIRST)[0] + rng.choice(["山地", "山脈", "連峰"]),
    "archipelago": lambda rng: rng.choice(FIRST)[0] + "諸島",
    "port": lambda rng: place_name(rng).title + "港", "dam": lambda rng: place_name(rng).title + "ダム",
    "line": lambda rng: place_name(rng).title + "線", "rail": lambda rng: place_name(rng).title + "鉄道",
    "arena": lambda rng: place_name(rng).title + rng.choice(["総合運動公園陸上競技場", "アリーナ", "スタジアム"]),
    "league": lambda rng: rng.choice(["", "全日本", "西日本", "東日本"]) + rng.choice(SPORTS) + "リーグ",
    "award": lambda rng: rng.choice([place_name(rng).title + "文化賞", person_name(rng).title[:2] + "賞"]),
    "publisher": lambda rng: place_name(rng).title + rng.choice(["書房", "出版", "社", "書店"]),
    "magazine": lambda rng: rng.choice(["月刊", "週刊", "季刊"]) + kana_word(rng).title,
    "newspaper": lambda rng: rng.choice(PARTY_WORDS)[0] + "新報",
}


class Slots(dict):
    """Template values, made on first use and then fixed for the whole page.

    ``{city}`` is one city throughout a page; ``{city2}`` is another one.
    Numbers (``{year}``, ``{n2}``...) are drawn anew at each use.
    """

    def __init__(self, rng: random.Random, **fixed):
        super().__init__(fixed)
        self.rng = rng

    def __missing__(self, key: str) -> str:
        make = SLOT_MAKERS.get(key) or SLOT_MAKERS[key.rstrip("0123456789")]
        value = make(self.rng)
        if not getattr(make, "fresh", False):
            self[key] = value
        return value


# ---------------------------------------------------------------- categories


@dataclass(frozen=True)
class Category:
    """One demo category: its ENE leaf, share of pages, group and how to write a page."""

    ene: str
    name: str  # the ENE name in Japanese
    weight: int
    group: str
    make_name: Callable[[random.Random], Name]
    leads: tuple[str, ...]
    facts: tuple[str, ...]
    stub_name: Callable[[random.Random], Name] | None = None  # None: same as make_name


CATEGORIES = [
    Category("1.1", "人名", 15, "person", person_name, (
        "{title}（{yomi}、{birth_year}年{month}月{day}日 - ）は、日本の{occupation}。{pref}{city}出身。",
        "{title}（{yomi}）は、日本の{occupation}。{company}所属。",
        "{title}（{yomi}、{birth_year}年 - ）は、{pref}出身の{occupation}である。",
    ), (
        "{school}を卒業後、{company}に入社した。",
        "{year}年、映画『{work}』で俳優としてデビューした。",
        "代表作に『{work}』『{work2}』などがある。",
        "{year}年の衆議院議員総選挙に{party}から立候補し、初当選した。",
        "{year}年に{team}へ入団し、{n1}年間プレーした。",
        "{year}年に{award}を受賞した。",
        "父は{occupation2}の{person}。",
        "{year}年に{city}の名誉市民に選ばれた。",
        "趣味は{hobby}、特技は{hobby2}。",
        "{year}年{month}月、{disease}のため死去した。{age}歳没。",
        "血液型は{blood}型。身長{cm}センチメートル。",
        "幼少期を{city2}で過ごし、{river}のほとりでよく遊んだという。",
    )),
    Category("1.5.1.1", "市区町村名", 8, "place", city_name, (
        "{head}は、{pref}の{dir}部に位置する{kind}。",
        "{head}は、{pref}の{dir}部にある{kind}で、{region}地方の中心都市の一つである。",
        "{head}は、{pref}{dir}部の{river}流域に広がる{kind}。",
    ), (
        "人口は約{pop}人、面積は{area}平方キロメートル。",
        "{early_year}年に周辺の{n1}町村が合併して発足した。",
        "{kind}域の{dir}部を{river}が流れ、{dir2}部には{mountain}がそびえる。",
        "主な産業は{industry}と{industry2}である。",
        "{kind}の木は{tree}、{kind}の花は{flower}。",
        "{kind}内には{station}があり、{line}が通っている。",
        "{school}が{kind}内にキャンパスを置いている。",
        "{year}年に{city2}と姉妹都市提携を結んだ。",
        "名物として{dish}が知られる。",
        "{kind}役所は{place}地区にある。",
    ), stub_name=place_name),
    Category("1.4.6.2", "企業名", 9, "org", company_name, (
        "{head}は、{pref}{city}に本社を置く日本の{business}。",
        "{head}は、{early_year}年に創業した日本の{business}である。",
        "株式会社{title}は、{pref}{city}に本社を置く{business}。",
    ), (
        "{early_year}年に{person}が{city}で創業した。",
        "資本金は{n2}億円、従業員数は約{n4}名。",
        "東京証券取引所スタンダード市場に上場している。",
        "主力製品は{product}で、国内シェアの約{n2}%を占める。",
        "{year}年に{company}を吸収合併した。",
        "{team}のスポンサーを務めている。",
        "社名は創業地の{place}に由来する。",
        "{year}年に本社を{city2}へ移転した。",
        "売上高は約{n3}億円。",
        "{year}年度の決算では過去最高益を記録した。",
    ), stub_name=neutral_org_name),
    Category("1.5.3.4", "河川名", 5, "place", river_name, (
        "{head}は、{pref}を流れる{river2}水系の一級河川。",
        "{head}は、{pref}{city}を流れる二級河川。",
        "{head}は、{pref}と{pref2}の境付近を流れる河川である。",
    ), (
        "{mountain}の山腹に源を発し、{city}で{river2}に合流する。",
        "流路延長は{km}キロメートル、流域面積は{area}平方キロメートル。",
        "中流部には{dam}が建設されている。",
        "河口付近は{bird}の越冬地として知られる。",
        "かつては舟運が盛んで、上流の木材が下流へ運ばれた。",
        "流域には{city}や{city2}の市街地が広がる。",
        "{year}年の台風では堤防が決壊し、流域に大きな被害が出た。",
        "アユやサケが遡上する川としても知られる。",
        "支流に{river3}がある。",
    ), stub_name=place_name),
    Category("1.5.3.2", "山地名", 5, "place", mountain_name, (
        "{head}は、{pref}{city}にある標高{height}メートルの山。",
        "{head}は、{pref}と{pref2}の境に位置する山で、{range}の主峰である。",
        "{head}は、{range}に属する標高{height}メートルの火山。",
    ), (
        "山頂には一等三角点が置かれている。",
        "山頂からは{sea}や{mountain2}を望むことができる。",
        "山麓を{river}が流れる。",
        "{early_year}年に{person}が初めて登頂した記録が残る。",
        "登山口は{station}から徒歩{n2}分の{place}地区にある。",
        "山頂付近には{flower}の群落が見られる。",
        "古くから山岳信仰の対象とされ、山頂に奥宮が祀られている。",
        "{pref}の名山の一つに数えられる。",
        "{year}年に噴火し、火口周辺への立ち入りが規制された。",
        "冬季には{n1}メートルを超える積雪がある。",
    ), stub_name=place_name),
    Category("1.5.3.3", "島名", 3, "place", island_name, (
        "{head}は、{sea}に浮かぶ島。{pref}{city}に属する。",
        "{head}は、{pref}の沖合約{n2}キロメートルに位置する有人島。",
        "{head}は、{archipelago}を構成する島の一つ。",
    ), (
        "面積は{n2}平方キロメートル、周囲は{km}キロメートル。",
        "{port}から定期船で約{n2}分。",
        "島の中央には{mountain}がそびえる。",
        "主な産業は漁業と観光で、{ingredient}の養殖が盛んである。",
        "人口は約{small_pop}人で、高齢化が進んでいる。",
        "島内には小中学校が{n1}校ある。",
        "{year}年に本土との間に橋が架けられた。",
        "周辺の海域は国立公園に含まれる。",
    ), stub_name=place_name),
    Category("1.6.4.7", "学校名", 7, "org", school_name, (
        "{head}は、{pref}{city}にある私立の{school_kind}。",
        "{head}は、{pref}{city}に本部を置く日本の公立{school_kind}。",
        "{head}は、{year}年に設置された{pref}の{school_kind}である。",
    ), (
        "{early_year}年に{place}{old_school}として創立された。",
        "{faculty}学部と{faculty2}学部を置く。",
        "在籍者数は約{n4}人。",
        "校訓は「{motto}」。",
        "{club}部は全国大会の常連として知られる。",
        "最寄り駅は{station}。",
        "卒業生には{occupation}の{person}がいる。",
        "キャンパスは{city}の{place}地区にある。",
        "{year}年に{school}と統合した。",
    )),
    Category("1.6.5.2", "鉄道駅名", 6, "place", station_name, (
        "{head}は、{pref}{city}にある、{rail}{line}の駅。",
        "{head}は、{pref}{city}{place}にある{rail}の駅である。",
        "{head}は、{pref}{city}にある{rail}と{rail2}の駅。",
    ), (
        "{early_year}年{month}月{day}日に開業した。",
        "{platform}を有する{station_type}である。",
        "{year}年から無人駅となっている。",
        "{year}年度の1日平均乗車人員は{n4}人であった。",
        "駅前には{school}のキャンパスがある。",
        "駅の{dir}側を{river}が流れている。",
        "駅名は所在地の旧村名に由来する。",
        "{line}の終着駅である。",
        "{year}年に現在の駅舎に建て替えられた。",
        "特急列車は停車しない。",
    )),
    Category("1.7.13.3", "映画名", 7, "works", work_title, (
        "『{title}』は、{year}年{month}月{day}日に公開された日本映画。監督は{person}。",
        "『{title}』は、{person}監督による{year}年の日本映画。",
        "『{title}』は、{year}年公開の{movie_genre}映画。",
    ), (
        "主演は{person2}。",
        "上映時間は{minutes}分。",
        "配給は{company}。",
        "{pref}{city}で撮影が行われた。",
        "興行収入は{n2}億円を記録した。",
        "第{n2}回{award}で作品賞を受賞した。",
        "{person3}の小説『{work}』を原作とする。",
        "主題歌は{person4}が歌う「{work2}」。",
        "{year}年にテレビで初めて放送された。",
        "公開時のキャッチコピーは「{catchphrase}」。",
        "脚本は{person5}が担当した。",
    )),
    Category("1.7.14.3", "書物名", 7, "works", work_title, (
        "『{title}』は、{person}による日本の{book_genre}。",
        "『{title}』は、{year}年に{publisher}から刊行された{person}の{book_genre}。",
        "『{title}』は、{person}が雑誌『{magazine}』に連載した{book_genre}。",
    ), (
        "{year}年に{publisher}から単行本が刊行された。",
        "{year}年に文庫化された。",
        "全{n1}巻。",
        "累計発行部数は{n2}万部を超える。",
        "第{n2}回{award}を受賞した。",
        "{year}年に{person2}の監督で映画化された。",
        "作者が少年時代を過ごした{city}を舞台にしている。",
        "{language}など{n1}か国語に翻訳されている。",
        "初版の装丁は{person3}が手がけた。",
        "{year}年に新装版が出版された。",
    )),
    Category("1.7.16.1", "料理名", 4, "dish", dish_name, (
        "{head}は、{pref}の{place}地方に伝わる郷土料理。",
        "{head}は、{ingredient}を主な材料とする日本の料理。",
        "{head}は、{pref}{city}で生まれたご当地グルメ。",
    ), (
        "{ingredient}と{ingredient2}を{method}作る。",
        "味付けには{seasoning}が使われる。",
        "正月や祭りなどのハレの日に振る舞われる。",
        "{year}年代に{city}の食堂で考案されたとされる。",
        "寒い季節に好んで食べられる。",
        "{year}年に{pref}の無形民俗文化財に選ばれた。",
        "各家庭で具材や味付けが異なる。",
        "{company}がレトルト食品として販売している。",
        "名称は{ingredient}の形に由来する。",
    )),
    Category("1.9.4.12", "哺乳類名", 4, "animal", mammal_name, (
        "{title}（学名：{latin}）は、{mammal_order}目に分類される哺乳類の一種。",
        "{title}は、{pref}の山地に生息する{mammal_order}目の哺乳類。",
        "{title}（{latin}）は、日本固有の哺乳類。",
    ), (
        "体長は{n2}センチメートル前後、尾長は{n1}センチメートルほど。",
        "体毛は{color}褐色で、冬になると白っぽく変わる。",
        "夜行性で、日中は樹洞や岩の隙間で休む。",
        "冬眠する。",
        "雑食性で、{animal_food}を食べる。",
        "一度に{n1}頭の子を産む。",
        "毛皮を目的とした乱獲で数を減らした。",
        "{river}の上流域では足跡がよく見つかる。",
    ), stub_name=neutral_animal_name),
    Category("1.9.4.11", "鳥類名", 5, "animal", bird_name, (
        "{title}（学名：{latin}）は、{bird_order}目に分類される鳥類の一種。",
        "{title}は、日本では{season}に見られる{migration}。",
        "{title}（{latin}）は、{bird_order}目の鳥。",
    ), (
        "全長は{n2}センチメートルほど。",
        "翼開長は約{n2}センチメートル。",
        "雄は繁殖期に{color}色の羽毛をまとう。",
        "さえずりは「{bird_call}」と聞こえる。",
        "樹上に椀形の巣をつくり、{n1}個の卵を産む。",
        "{season}になると{abroad}から渡来する。",
        "昆虫や木の実を食べる。",
        "{river}の河口付近で越冬する群れが観察される。",
    ), stub_name=neutral_animal_name),
    Category("1.10.0", "病気名＿その他", 4, "disease", disease_name, (
        "{head}は、{body}に{symptom}を生じる疾患。",
        "{head}は、{cause}によって起こる病気である。",
        "{head}は、{year}年に{person}によって初めて報告された疾患。",
    ), (
        "主な症状は{symptom}と{symptom2}である。",
        "原因は{cause}と考えられている。",
        "治療には{treatment}が用いられる。",
        "国内の患者数は約{n4}人と推定されている。",
        "指定難病の一つ。",
        "{age}歳以上の高齢者に多くみられる。",
        "{place}地方で集団発生したことから名付けられた。",
        "発見者である{person2}にちなんで名付けられた。",
        "{school}の研究チームが原因遺伝子を特定した。",
    )),
    Category("1.4.5.3", "競技団体名", 5, "org", team_name, (
        "{head}は、{pref}{city}を本拠地とする{sport}のクラブチーム。",
        "{head}は、{league}に加盟する{sport}チーム。",
        "{head}は、{company}の{sport}部を前身とするプロ{sport}チームである。",
    ), (
        "ホームスタジアムは{arena}。",
        "{year}年に創設された。",
        "チームカラーは{color}と{color2}。",
        "監督は{person}。",
        "{year}年シーズンに{league}で初優勝を果たした。",
        "運営会社は{company2}。",
        "マスコットキャラクターは「{kana}」。",
        "下部組織の出身選手が多い。",
        "{year}年に{league2}へ昇格した。",
        "ホームゲームの平均観客数は約{n4}人。",
    ), stub_name=neutral_org_name),
    Category("1.4.7.2", "政党名", 3, "org", party_name, (
        "{head}は、日本の政党。",
        "{head}は、{year}年に{person}らによって結成された日本の政党。",
        "{head}は、{pref}を地盤とする地域政党。",
    ), (
        "党首は{person2}。",
        "{ideology}を掲げる。",
        "{year}年の衆議院議員総選挙で{n2}議席を獲得した。",
        "本部は{pref}{city}に置かれている。",
        "{year}年に{party}と合流し、解散した。",
        "党員数は約{n4}人。",
        "機関紙として『{newspaper}』を発行している。",
        "{year}年の参議院議員通常選挙では議席を獲得できなかった。",
        "シンボルマークは{color}色の鳩。",
    ), stub_name=neutral_org_name),
]
DEMO_CATEGORIES = {c.ene: c for c in CATEGORIES}

# Sentences any member of a group may use: a page made only of these (a stub)
# cannot tell apart the categories of its group.
GROUP_STUB_LEADS = {
    "person": ("{title}（{yomi}）は、日本の人物。", "{title}（{yomi}、{birth_year}年 - ）は、{pref}出身の人物。"),
    "place": ("{head}は、{pref}{city}にある。", "{head}は、{pref}の{dir}部に位置する。",
              "{head}は、{pref}の{city}と{city2}の境付近にある。"),
    "org": ("{head}は、{pref}{city}に本拠を置く日本の団体。", "{head}は、{year}年に設立された日本の組織である。",
            "{head}は、{person}らが{year}年に立ち上げた団体。"),
    "works": ("『{title}』は、{person}による日本の作品。", "『{title}』は、{year}年に発表された{person}の作品である。"),
    "dish": ("{head}は、{pref}の{place}地方で親しまれている食べ物。",),
    "animal": ("{title}（学名：{latin}）は、日本に分布する動物の一種。", "{title}は、{pref}などの山地に生息する動物。"),
    "disease": ("{head}は、まれにみられる病態の一つ。",),
}
GROUP_SHARED = {
    "person": ("{year}年に{city}へ移り住んだ。", "晩年は{pref}で過ごした。"),
    "place": (
        "{year}年の豪雨では周辺で大きな被害が出た。",
        "一帯は{year}年に県立自然公園に指定された。",
        "地名は{origin}に由来するとされる。",
        "周辺には{school}や{company}の工場がある。",
        "{city}の中心部から{dir}へ約{n2}キロメートルの位置にある。",
        "冬季は積雪が多く、{season}には観光客でにぎわう。",
    ),
    "org": (
        "代表は{person}。",
        "{year}年に現在の名称に改めた。",
        "略称は「{kana}」。",
        "{year}年に{company}と業務提携を結んだ。",
        "設立当初の構成員はわずか{n2}名であった。",
        "本部は{city}の{place}地区にある。",
    ),
    "works": (
        "物語は{place}の港町を舞台に、{given}という{role}の成長を描く。",
        "主人公の{given}は、{dream}を目指して上京する。",
        "タイトルは作中に登場する{noun}に由来する。",
        "続編として『{work}』がある。",
        "{year}年に{award}を受賞した。",
        "発表当時は賛否が分かれた。",
    ),
    "dish": ("{pref}の学校給食でも出される。", "地元の{place}祭りでは屋台が並ぶ。"),
    "animal": (
        "森林や草地に生息する。",
        "{pref}では天然記念物に指定されている。",
        "環境省のレッドリストでは準絶滅危惧に分類されている。",
        "地方によっては「{kana}」とも呼ばれる。",
        "個体数は減少傾向にある。",
        "{pref}の{place}地方に多く分布する。",
    ),
    "disease": ("{year}年に診断基準が定められた。", "詳しい仕組みはまだ分かっていない。"),
}
GENERIC = (
    "{year}年には{person}が訪れ、その印象を随筆に書き残している。",
    "地元では「{kana}」の愛称で親しまれている。",
    "{year}年放送のテレビ番組で取り上げられ、全国的に知られるようになった。",
    "名称の由来については諸説ある。",
    "{year}年に{city}の広報誌で特集が組まれた。",
)

# Two-label pages: a lead that covers both, then facts of each category.
MULTI_LABEL = {
    ("1.7.14.3", "1.7.13.3"): (
        "『{title}』は、{person}による日本の{book_genre}、およびそれを原作とする{year}年公開の日本映画。",
        "『{title}』は、{person}の小説と、{person2}監督によるその映画化作品である。",
    ),
    ("1.4.6.2", "1.4.5.3"): (
        "{head}は、{pref}{city}を本拠地とする{sport}チーム、およびその運営会社。",
        "{head}は、{sport}チームを保有・運営する日本の企業であり、同名のチームも指す。",
    ),
    ("1.5.3.3", "1.5.1.1"): (
        "{head}は、{sea}に浮かぶ島であり、島全体で{pref}の一つの村を構成する。",
        "{head}は、{pref}の沖合にある島、およびその島を区域とする村。",
    ),
}


# ---------------------------------------------------------------- pages


def _head(name: Name) -> str:
    """A title as the lead sentence opens it: with its reading when it has one."""
    return f"{name.title}（{name.yomi}）" if name.yomi else name.title


def _page_slots(rng, name: Name) -> Slots:
    fixed = {"title": name.title, "yomi": name.yomi or "", "head": _head(name), "kind": "村"}
    return Slots(rng, **(fixed | name.slots))


def _body(rng, categories: list[Category]) -> list[str]:
    """Category facts (2-5; 2-3 of each of two), sometimes a group or generic sentence, shuffled."""
    sentences = []
    for category in categories:
        sentences += rng.sample(category.facts, rng.randint(2, 3 if len(categories) > 1 else 5))
    if rng.random() < 0.5:
        sentences.append(rng.choice(GROUP_SHARED[categories[0].group]))
    if rng.random() < 0.3:
        sentences.append(rng.choice(GENERIC))
    rng.shuffle(sentences)
    return sentences


def _stub_body(rng, category: Category) -> list[str]:
    """1-3 sentences shared by the whole group: they name no category."""
    shared = GROUP_SHARED[category.group]
    sentences = rng.sample(shared, min(len(shared), rng.randint(1, 3)))
    if rng.random() < 0.3:
        sentences.append(rng.choice(GENERIC))
    return sentences


def make_page(rng: random.Random, categories: list[Category], stub: bool) -> tuple[str, str]:
    """``(title, text)`` of one page about a new entity of ``categories[0]``.

    Several categories: a two-label page. ``stub``: a short page written only
    with its group's shared sentences (single-label pages only).
    """
    first = categories[0]
    make_name = (first.stub_name or first.make_name) if stub else first.make_name
    name = make_name(rng)
    slots = _page_slots(rng, name)
    if stub:
        lead, body = rng.choice(GROUP_STUB_LEADS[first.group]), _stub_body(rng, first)
    elif len(categories) > 1:
        lead, body = rng.choice(MULTI_LABEL[tuple(c.ene for c in categories)]), _body(rng, categories)
    else:
        lead, body = rng.choice(first.leads), _body(rng, categories)
    return name.title, "".join(s.format_map(slots) for s in [lead, *body])


def _page_plan(n_pages: int, rng: random.Random) -> list[list[Category]]:
    """The categories of each page: shares follow the weights, order is shuffled."""
    n_multi = round(n_pages * MULTI_LABEL_RATE)
    combos = [[DEMO_CATEGORIES[e] for e in enes] for enes in MULTI_LABEL]
    plan = [combos[i % len(combos)] for i in range(n_multi)]
    n_single, total = n_pages - n_multi, sum(c.weight for c in CATEGORIES)
    counts = [n_single * c.weight // total for c in CATEGORIES]
    for i in range(n_single - sum(counts)):  # hand out the rounding remainder
        counts[i % len(counts)] += 1
    plan += [[c] for c, k in zip(CATEGORIES, counts) for _ in range(k)]
    rng.shuffle(plan)
    return plan


def _make_unique_page(rng, categories, stub, taken: set[str]) -> tuple[str, str]:
    """A page whose title is not taken yet; after many tries, with "(県名)" as Wikipedia does."""
    for attempt in range(1000):
        title, text = make_page(rng, categories, stub)
        if attempt >= 20:
            title = f"{title} ({rng.choice(PREFECTURES)})"
        if title not in taken:
            return title, text
    raise RuntimeError("ページ名の候補が尽きました（n_pages が大きすぎます）")


def make_demo_corpus(n_pages=3000, seed=0) -> list[Record]:
    """A synthetic SHINRA-style corpus of ``n_pages`` pages, the same for the same seed.

    Labels are ENE v9 leaf ids (16 categories, see ``DEMO_CATEGORIES``); about
    2.5% of pages carry two labels. Titles and page ids are unique; records
    are in page id order.
    """
    if n_pages < 1:
        raise ValueError(f"n_pages は 1 以上にしてください（{n_pages} が指定されました）")
    rng = random.Random(seed)
    page_ids = rng.sample(range(1000, 10 * n_pages + 100_000), n_pages)
    taken, records = set(), []
    for page_id, categories in zip(page_ids, _page_plan(n_pages, rng)):
        stub = len(categories) == 1 and rng.random() < STUB_RATE
        title, text = _make_unique_page(rng, categories, stub, taken)
        taken.add(title)
        records.append(Record(str(page_id), title, text, [c.ene for c in categories]))
    return sorted(records, key=lambda r: int(r.page_id))
