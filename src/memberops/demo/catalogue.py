"""Fixed facts of the demo brand: channels, identifier kinds, stores and the fruit catalogue."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import numpy.typing as npt

BRAND_NAME = "鲜果时光 FreshHours"


class Channel(IntEnum):
    """Order sources, in the order of their import profiles."""

    POS = 0
    MINI_PROGRAM = 1
    TMALL = 2
    DOUYIN = 3
    MEITUAN = 4


CHANNEL_CODES: tuple[str, ...] = ("pos", "mini_program", "tmall", "douyin", "meituan")
#: Share of orders per channel across the brand; each person's own mix scatters around it.
CHANNEL_SHARES: tuple[float, ...] = (0.50, 0.25, 0.08, 0.07, 0.10)


class Field(IntEnum):
    """Where an event happens (a channel code of the event format)."""

    POS = 0
    MINI_PROGRAM = 1
    TMALL = 2
    DOUYIN = 3
    MEITUAN = 4
    GROUP_CHAT = 5
    OFFICIAL_ACCOUNT = 6
    LIVE_ROOM = 7


FIELD_CODES: tuple[str, ...] = (
    "pos", "mini_program", "tmall", "douyin", "meituan", "group_chat", "official_account", "live_room",
)  # fmt: skip


class IdType(IntEnum):
    """Kinds of identifier a person can carry; a record's identifiers are a bit mask over these."""

    PHONE = 0
    MEMBER_NO = 1
    UNIONID = 2
    MP_OPENID = 3  # mini-program openid: a different WeChat app from the official account
    OA_OPENID = 4  # official-account openid
    TMALL = 5
    DOUYIN = 6
    MEITUAN = 7


def bit(kind: IdType) -> int:
    """The mask bit of an identifier kind."""
    return 1 << int(kind)


#: Mainland mobile prefixes that phonenumbers accepts for every following 8 digits.
MOBILE_PREFIXES: tuple[int, ...] = (
    *range(130, 140), 150, 151, 152, 153, 155, 156, 157, 158, 159, 166,
    170, 171, 172, 173, 175, 176, 177, 178, *range(180, 190), 191, 198, 199,
)  # fmt: skip

CITIES: tuple[tuple[str, str, float, tuple[str, ...]], ...] = (
    ("上海", "SH", 0.28, ("徐汇", "静安", "浦东", "长宁", "闵行", "杨浦", "普陀", "虹口", "黄浦", "宝山")),
    ("杭州", "HZ", 0.15, ("西湖", "上城", "拱墅", "滨江", "余杭", "萧山")),
    ("南京", "NJ", 0.12, ("鼓楼", "玄武", "秦淮", "建邺", "江宁", "栖霞")),
    ("苏州", "SU", 0.12, ("姑苏", "园区", "虎丘", "吴中", "相城")),
    ("深圳", "SZ", 0.17, ("南山", "福田", "罗湖", "宝安", "龙华", "龙岗")),
    ("广州", "GZ", 0.16, ("天河", "越秀", "海珠", "番禺", "白云", "荔湾")),
)
STORE_TYPES: tuple[str, ...] = ("community", "mall", "flagship", "transit")
STORE_TYPE_LABELS: tuple[str, ...] = ("社区店", "商场店", "旗舰店", "地铁店")
STORE_TYPE_SHARES: tuple[float, ...] = (0.55, 0.27, 0.0, 0.18)  # flagships: the first store of a city
STORE_TYPE_TRAFFIC: tuple[float, ...] = (1.0, 1.4, 2.2, 0.8)
ORDINALS: tuple[str, ...] = ("", "二店", "三店", "四店", "五店", "六店", "七店", "八店", "九店")


@dataclass(frozen=True)
class Stores:
    """The store list; index ``i`` of every tuple is one store."""

    codes: tuple[str, ...]
    names: tuple[str, ...]
    cities: tuple[str, ...]
    types: tuple[int, ...]

    @property
    def traffic(self) -> npt.NDArray[np.float64]:
        """Probability that a person's home store is each store (flagships and malls draw more)."""
        weights = np.asarray([STORE_TYPE_TRAFFIC[kind] for kind in self.types], dtype=np.float64)
        probabilities: npt.NDArray[np.float64] = weights / weights.sum()
        return probabilities


def store_count(members: int) -> int:
    """Forty stores, two more per 100,000 members."""
    return 40 + 2 * (members // 100_000)


def make_stores(rng: np.random.Generator, count: int) -> Stores:
    """Spread ``count`` stores over the cities by weight (largest remainder), one flagship per city."""
    weights = np.asarray([city[2] for city in CITIES])
    quota = weights / weights.sum() * count
    per_city = np.floor(quota).astype(np.int64)
    per_city[np.argsort(-(quota - per_city), kind="stable")[: count - int(per_city.sum())]] += 1
    codes: list[str] = []
    names: list[str] = []
    cities: list[str] = []
    types: list[int] = []
    shares = np.asarray(STORE_TYPE_SHARES)
    for (city, prefix, _, districts), size in zip(CITIES, per_city.tolist(), strict=True):
        kinds = [2, *rng.choice(len(STORE_TYPES), size=size - 1, p=shares / shares.sum()).tolist()]
        seen: dict[str, int] = {}
        for number, kind in enumerate(kinds[:size], start=1):
            base = f"{city}{districts[(number - 1) % len(districts)]}{STORE_TYPE_LABELS[kind]}"
            seen[base] = seen.get(base, 0) + 1
            codes.append(f"{prefix}{number:03d}")
            names.append(base.removesuffix("店") + ORDINALS[seen[base] - 1] if seen[base] > 1 else base)
            cities.append(city)
            types.append(kind)
    return Stores(tuple(codes), tuple(names), tuple(cities), tuple(types))


#: (sku, category, unit price in fen); the category is what product-preference tags are built from.
PRODUCTS: tuple[tuple[str, str, int], ...] = (
    ("DUR-MST", "榴莲", 12_800), ("DUR-JSL", "榴莲", 8_900), ("DUR-BOX", "榴莲", 15_900),
    ("CHE-J1", "车厘子", 6_990), ("CHE-JJ", "车厘子", 9_990), ("CHE-3J", "车厘子", 12_900),
    ("MAN-TN", "芒果", 2_990), ("MAN-GF", "芒果", 3_990), ("MAN-AO", "芒果", 4_990),
    ("STR-DD", "草莓", 3_990), ("STR-HY", "草莓", 5_990),
    ("GRA-YG", "葡萄", 3_590), ("GRA-JF", "葡萄", 2_590), ("GRA-MR", "葡萄", 4_590),
    ("CIT-WG", "柑橘", 1_990), ("CIT-CT", "柑橘", 2_990), ("CIT-YZ", "柑橘", 1_590),
    ("APP-FS", "苹果", 1_990), ("APP-AK", "苹果", 2_990),
    ("WAT-QL", "西瓜", 2_990), ("WAT-XB", "西瓜", 3_990),
    ("CUT-MX", "果切", 1_990), ("CUT-DL", "果切", 2_590), ("CUT-XG", "果切", 1_290),
    ("BLU-YN", "蓝莓", 3_490), ("BLU-JK", "蓝莓", 5_990),
    ("KIW-ZX", "猕猴桃", 2_990), ("KIW-JG", "猕猴桃", 3_990),
    ("GIF-CN", "礼盒", 19_800), ("GIF-ZQ", "礼盒", 16_800), ("GIF-HS", "礼盒", 29_800),
)  # fmt: skip
CATEGORIES: tuple[str, ...] = tuple(dict.fromkeys(category for _, category, _ in PRODUCTS))
#: How often a category is somebody's favourite or an impulse buy (same order as CATEGORIES).
CATEGORY_POPULARITY: tuple[float, ...] = (0.8, 1.0, 1.1, 1.0, 1.0, 1.2, 0.9, 0.8, 1.3, 0.7, 0.6, 0.5)

PAID_PLANS: tuple[tuple[str, int, int], ...] = (("PLAN-HALF", 9_900, 182), ("PLAN-ANNUAL", 16_800, 365))
PAID_PLAN_CATEGORY = "paid_plan"


def product_skus() -> tuple[str, ...]:
    """Every SKU code that can appear on an order: fruit, then the paid plans."""
    return tuple(sku for sku, _, _ in PRODUCTS) + tuple(sku for sku, _, _ in PAID_PLANS)


def product_categories() -> tuple[str, ...]:
    """The category of every SKU of ``product_skus``."""
    return tuple(category for _, category, _ in PRODUCTS) + (PAID_PLAN_CATEGORY,) * len(PAID_PLANS)


def product_prices() -> npt.NDArray[np.int64]:
    """Unit price in fen of every SKU of ``product_skus``."""
    return np.asarray([price for _, _, price in PRODUCTS] + [price for _, price, _ in PAID_PLANS])


def category_of_product() -> npt.NDArray[np.int64]:
    """Category index (into CATEGORIES) of every fruit SKU."""
    return np.asarray([CATEGORIES.index(category) for _, category, _ in PRODUCTS], dtype=np.int64)
