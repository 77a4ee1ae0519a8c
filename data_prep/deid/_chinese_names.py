"""Chinese person names in free text: after a cue word (患者, 妻子), before a title (先生, 医生) or before sex and
age (王建国，男，65岁), with the surnames that are also the first characters of clinical words kept apart."""

from __future__ import annotations

import re
from collections.abc import Iterator

from data_prep.deid._regex_parts import CJK
from data_prep.deid._spans import Detector, Span

# fmt: off
# Common Chinese surnames. Those that also start everyday clinical words (于, 平, 曾, 双, 左 …) are
# left out, and CHINESE_NOT_NAMES stops the remaining clashes such as 高血压 or 白细胞.
CHINESE_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗郑梁谢宋唐许韩冯邓曹彭肖田董袁潘蒋蔡余杜叶程苏魏吕丁沈"
    "姚卢姜崔钟谭陆汪范金石廖贾夏韦付傅白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴"
    "莫孔汤温康施文牛樊葛邢齐乔伍庞颜倪庄聂章鲁岳翟殷詹申耿兰焦俞柳祝宁柯纪童凌毕裴霍涂苗谷盛翁"
    "骆蓝辛靳柴鲍华喻祁蒲滕饶艾穆卓"
)
CHINESE_COMPOUND_SURNAMES = ("欧阳", "司马", "诸葛", "上官", "东方", "皇甫", "慕容", "令狐", "司徒")
CHINESE_NOT_NAMES = (
    "高血", "高热", "高脂", "高烧", "高糖", "高钾", "高钠", "高尿", "高龄", "高危", "高度", "高压", "白细",
    "白蛋", "白带", "黄疸", "黄染", "周身", "周围", "余无", "余未", "余均", "谷丙", "谷草", "谷氨", "石膏",
    "凌晨", "华法", "文化", "温度", "康复", "齐全", "苗条", "盛行", "毛细", "贾第", "江浙", "武汉", "龙胆",
    "钟表", "汤剂", "潘生", "金属", "程度", "程序", "范围", "韦格", "孔径", "严重", "严格", "史料", "雷诺",
    "邢台", "段时", "叶酸", "叶片", "付费", "孟鲁", "骆驼", "蒲公", "艾滋", "艾司", "卓越", "陆续",
    "平素", "平时", "于今", "于昨", "于前", "于当", "于次", "于入", "于外", "于本", "于我", "曾于", "曾因",
    "曾有", "曾在", "曾行", "曾患", "曾经", "常年", "常规", "全身", "明显", "明确", "应用", "向其", "时有",
    "安静", "关节", "房颤", "车祸", "管理", "单侧", "尚可", "尚未", "查体", "经治", "经过", "左侧", "方可",
    "连续", "解释", "包括", "任何",
    "于门", "于外", "于急", "于院", "于病", "左下", "左上", "左心", "左室", "左房", "左眼", "左耳", "左肺", "左手",
    "左足", "左腿", "左膝", "左肩", "左腰", "左腹", "左胸", "左侧", "向心", "安眠", "白内", "平卧", "全麻", "全血",
    "经皮", "经口", "经鼻", "单纯", "关节", "房室", "房性", "时感", "常感", "明确", "应激",
)
# Words after which a name is likely but not certain (患者于3天前…): only unambiguous surnames count.
CHINESE_WEAK_CUES = ("患者", "病人", "患儿", "产妇", "医师", "医生", "大夫", "护士")
# Words after which a name is all but certain (妻子于桂兰): every surname counts.
CHINESE_STRONG_CUES = (
    "姓名", "主治医师", "主任医师", "住院医师", "家属", "联系人", "其儿子", "其女儿", "其子", "其女", "其妻", "其夫",
    "儿子", "女儿", "妻子", "丈夫", "爱人", "老伴", "配偶", "母亲", "父亲", "儿媳", "女婿", "孙子", "孙女", "外孙",
    "外孙女", "哥哥", "姐姐", "弟弟", "妹妹", "侄子", "侄女", "监护人", "陪护",
)
CHINESE_AMBIGUOUS_SURNAMES = "于曾平左方常全明应向时和安解连包关房车管单尚查经任高白黄周余谷"
CHINESE_TITLES = "先生|女士|医生|医师|大夫|主任|护士|老师|阿姨"
CHINESE_AFTER_NAME = (
    "电话", "手机", "联系", "因", "于", "诉", "自", "今", "曾", "在", "已", "无", "有", "为", "是", "的",
    "说", "称", "陪", "同", "男", "女", "先生", "女士", "医生", "医师", "建议", "表示", "年", "岁", "入院",
    "就诊", "来", "到", "近", "主诉", "既往", "反复", "出现", "发现", "签", "知情", "随访", "复诊", "和",
    "及", "与", "等", "查", "嘱", "接诊", "诊断", "住", "家住", "现", "系", "回", "将", "会", "负责",
)
# fmt: on


_CHINESE_SURNAME = frozenset(CHINESE_SURNAMES)
_ANY_CHINESE_SURNAME = frozenset(CHINESE_SURNAMES + CHINESE_AMBIGUOUS_SURNAMES)
_TITLE = re.compile(rf"(?:{CHINESE_TITLES})")
# fmt: off
GIVEN_NAME_CHARS = frozenset(
    "伟静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华芳敏燕玲红梅莉兰凤洁琳雪婷颖鹏斌辉波宁浩峰健亮龙飞阳林欣"
    "娜晶萍建国志海春晓云文俊鑫宇凯帆瑶琪晨佳慧倩蕾薇"
)
# fmt: on
"""Characters common as a one-character given name: after a weak cue, a clinical-looking surname with one more
character is a name only if that character is one of these (患者方静，女), not a word (患者左眼，男)."""
_DESCRIBED = re.compile(rf"[，,、\s（(]*(?:男|女)(?:[，,、\s）)]|$)|[，,]\s*\d{{1,3}}\s*岁|(?:{CHINESE_TITLES})")
"""What follows a name in a note's opening line: sex (，男，), age (，45岁) or a title (女士)."""


def _chinese_name_length(text: str, start: int, strong_cue: bool) -> int:
    """How many characters of a cue-introduced Chinese name start at ``start`` (0 if none).

    After a weak cue (患者), a surname that also starts clinical words (曾, 方, 安, 关 …) is a name only where the
    note goes on as it does after a name: a title (女士), or sex or age (患者曾志伟，男，45岁). Clinical words after
    the cue (患者平素体健，男) stay words: CHINESE_NOT_NAMES is checked first."""
    surname = next((s for s in CHINESE_COMPOUND_SURNAMES if text.startswith(s, start)), None)
    confirm = False
    if surname is None:
        if start >= len(text) or text[start] not in _ANY_CHINESE_SURNAME:
            return 0
        confirm = not strong_cue and text[start] not in _CHINESE_SURNAME
        surname = text[start]
    if text.startswith(CHINESE_NOT_NAMES, start):
        return 0
    if not confirm:
        return _given_name_length(text, start, surname)
    if _TITLE.match(text, start + len(surname)):
        return len(surname)
    length = _given_name_length(text, start, surname)
    given = text[start + len(surname) : start + length]
    plausible = len(given) == 2 or (len(given) == 1 and given in GIVEN_NAME_CHARS)
    return length if plausible and _DESCRIBED.match(text, start + length) else 0


def _given_name_length(text: str, start: int, surname: str) -> int:
    """The length of the name that ``surname`` at ``start`` opens: up to two characters of given name, ending
    where a word that follows names begins."""
    given_start = start + len(surname)

    def is_cjk(pos: int) -> bool:
        return pos < len(text) and "\u4e00" <= text[pos] <= "\u9fff"

    def boundary(pos: int) -> bool:
        return not is_cjk(pos) or text.startswith(CHINESE_AFTER_NAME, pos)

    if given_start < len(text) and text[given_start] == "某":
        return len(surname) + (2 if text.startswith("某某", given_start) else 1)
    cjk_after = 0
    while cjk_after < 2 and is_cjk(given_start + cjk_after):
        cjk_after += 1
    if cjk_after == 0:
        return 0
    for n in (1, 2):
        if n <= cjk_after and boundary(given_start + n):
            return len(surname) + n
    return len(surname) + cjk_after


def chinese_name_detector() -> Detector:
    """Chinese names after cues (患者王建国, 主治医师：李华), before titles (张先生) or before sex and age
    (王建国，男，65岁)."""
    cues = sorted(CHINESE_STRONG_CUES + CHINESE_WEAK_CUES, key=len, reverse=True)
    cue = re.compile(rf"(?P<cue>{'|'.join(cues)})[：:\s（(]*")
    # A titled name starts a word, or follows a verb of contact (请联系徐医生, 由王主任会诊).
    titled = re.compile(
        rf"(?:(?<![{CJK}])|(?<=联系)|(?<=[请找由向给问]))"
        rf"((?:{'|'.join(CHINESE_COMPOUND_SURNAMES)}|[{CHINESE_SURNAMES}])[{CJK}]{{0,2}}?)(?={CHINESE_TITLES})"
    )
    described = re.compile(
        rf"(?<![{CJK}])((?:{'|'.join(CHINESE_COMPOUND_SURNAMES)}|[{CHINESE_SURNAMES}])[{CJK}]{{1,2}})"
        rf"(?=[，,、\s（(]*(?:男|女)[，,、\s）)]|[，,]\s*\d{{1,3}}\s*岁)"
    )

    def detect(text: str) -> Iterator[Span]:
        for m in cue.finditer(text):
            length = _chinese_name_length(text, m.end(), m.group("cue") in CHINESE_STRONG_CUES)
            if length:
                yield Span(m.end(), m.end() + length, "name")
        for m in titled.finditer(text):
            yield Span(m.start(1), m.end(1), "name")
        for m in described.finditer(text):
            if not text.startswith(CHINESE_NOT_NAMES, m.start(1)):
                yield Span(m.start(1), m.end(1), "name")

    return detect
