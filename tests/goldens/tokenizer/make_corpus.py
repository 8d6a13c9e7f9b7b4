#!/usr/bin/env python3
"""Writes tests/goldens/tokenizer/corpus.jsonl: the strings whose Hugging Face ids the tokenizer test checks.

Deterministic (a fixed seed, no external data): hand-written cases for every rule of the Qwen2 pre-tokenizer, the
added-token matcher, NFC and the byte-level BPE, then seeded mixtures of those fragments. One JSON string per line;
U+0085, U+2028 and U+2029 are written as escapes so that no line reader splits a line on them.

usage: make_corpus.py [--out tests/goldens/tokenizer/corpus.jsonl]
"""
import argparse
import itertools
import json
import os
import random

CHINESE = [
    "你好，世界！", "今天天气很好，我们去公园散步吧。", "人工智能正在改变我们的生活方式。",
    "我爱北京天安门", "这是一个测试句子，用来检查分词器是否正确。", "他说：“明天见！”",
    "中华人民共和国成立于1949年10月1日。", "请把这段文字翻译成英文：机器学习很有趣。", "价格是￥128.50元",
    "第三章　总则", "《红楼梦》是中国古典四大名著之一", "数据库连接失败，请稍后重试（错误码：E1024）",
    "一二三四五六七八九十百千万亿", "繁體中文與简体中文混合", "〇零壹贰叁肆伍陆柒捌玖拾",
]
JAPANESE = [
    "こんにちは、世界！", "東京タワーに行きました。", "カタカナとひらがなと漢字", "ｶﾀｶﾅ半角", "今日は２０２４年です",
    "わたしはがくせいです。", "ラーメンが食べたいです！", "〜ですね。", "ヴァイオリン", "ｱｲｳｴｵ ﾊﾟﾋﾞﾌﾟ",
]
KOREAN = ["안녕하세요, 세계!", "한국어 문장을 토큰화합니다.", "대한민국 서울특별시", "ㅋㅋㅋㅋ ㅎㅎ", "가나다라마바사"]
OTHER_SCRIPTS = [
    "مرحبا بالعالم", "السلام عليكم ورحمة الله", "שלום עולם", "עִבְרִית עם ניקוד", "สวัสดีครับ ยินดีต้อนรับ",
    "ภาษาไทยไม่มีช่องว่างระหว่างคำ", "नमस्ते दुनिया", "हिन्दी भाषा में लिखा गया वाक्य", "Привет, мир!",
    "Ελληνικά κείμενα", "Ünïcödé Ñoño façade naïve", "Tiếng Việt có dấu", "ქართული ენა", "Հայերեն", "ᚠᚢᚦᚨᚱᚲ",
    "தமிழ் மொழி", "বাংলা ভাষা", "ગુજરાતી", "ಕನ್ನಡ", "മലയാളം", "සිංහල", "ພາສາລາວ", "ភាសាខ្មែរ", "မြန်မာ",
    "አማርኛ", "ᠮᠣᠩᠭᠣᠯ", "ꦧꦱꦗꦮ", "ܣܘܪܝܝܐ", "ދިވެހި",
]
ENGLISH = [
    "Hello, world!", "The quick brown fox jumps over the lazy dog.", "I can't believe it's not butter.",
    "She'll be there; we've been waiting.", "HELLO WORLD", "camelCaseIdentifier and snake_case_name",
    "Mr. O'Neil's dog's bone", "rock 'n' roll", "It's 3:45 p.m. on Dec. 25th, 2023.",
    "e.g. i.e. etc. vs.", "The year 1999 was 2x better than 1998!", "  leading spaces", "trailing spaces   ",
    "Tokenization is the first step.", "A", "a", "I", "x y z", "don't DON'T Don't dOn'T",
]
EMOJI = [
    "😀", "👍🏽", "👩‍💻", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇨🇳🇺🇸🇯🇵", "❤️", "✋🏿 ✋🏻", "🧑🏾‍🚀", "👁️‍🗨️", "1️⃣ #️⃣ *️⃣",
    "🙂🙃😉", "emoji at the end 🎉", "🎉 at the start", "中文😀混合", "🏴󠁧󠁢󠁳󠁣󠁴󠁿", "👩🏻‍❤️‍💋‍👨🏼", "🤷‍♀️", "☕︎ vs ☕️",
]
COMBINING = [
    "e\u0301", "cafe\u0301", "Cafe\u0301 na\u0131\u0308ve", "A\u030a", "\u212b", "\u2126 ohm", "n\u0303",
    "\u1100\u1161\u11a8", "\u1112\u1161\u11ab\u1100\u1173\u11af", "o\u0308\u0304", "\u0301 leading mark",
    "a\u0323\u0307", "a\u0307\u0323", "\u00c5ngstr\u00f6m", "q\u0307\u0323", "\u0344", "\u0958", "\u2000\u0301",
    "\u1e9b\u0323", "x\u0300\u0301\u0302\u0303\u0304", "\u30ab\u3099", "\u304b\u3099\u304d\u3099",
    "\ufb01 ligature \ufb02", "\u00bd \u2153 \u00b2 \u2460", "\u0627\u0653", "\u0915\u093c",
]
FULL_WIDTH = ["ＡＢＣａｂｃ１２３", "！＂＃＄％＆＇（）", "Ｈｅｌｌｏ，　Ｗｏｒｌｄ！", "１２：３０", "＠ｕｓｅｒ"]
CODE = [
    "def f(x):\n    return x * 2\n", "int main() {\n\treturn 0;\n}\n", "for (let i = 0; i < n; i++) { sum += a[i]; }",
    "fn main() { println!(\"{}\", 42); }", "SELECT * FROM users WHERE id = 1;", "#include <stdio.h>\r\n",
    "if x != None and y >= 3:\n        pass", "const s = `template ${x}`;", "<div class=\"a\">Text</div>",
    "package main\n\nimport \"fmt\"\n", "std::vector<int> v{1, 2, 3};", "$ ls -la | grep '.txt' > out.log",
    "x <<= 2; y >>>= 1; z **= 3;", "    indented with four spaces", "\t\ttabs\tand\tmore", "a=b+c-d*e/f%g",
    "public static void main(String[] args) {}", "lambda x: x if x else None", "#!/usr/bin/env python3\n",
    "// comment\n/* block */", "<?php echo $x; ?>", "{{ jinja }} {% if %}", "matrix[i][j] += 1e-9;",
]
URLS_JSON = [
    "https://www.example.com/path?q=1&r=two#frag", "http://localhost:8080/api/v1/items",
    "mailto:someone@example.org", "ftp://ftp.example.net/pub/file.tar.gz", "user@mail.example.co.uk",
    "{\"key\": \"value\", \"n\": 123, \"list\": [1, 2, 3], \"ok\": true}", "{\"nested\": {\"a\": null}}",
    "[{\"id\":1},{\"id\":2}]", "{\"zh\": \"中文\", \"emoji\": \"😀\"}", "C:\\Users\\name\\file.txt", "/usr/local/bin/",
]
MATH = [
    "∑_{i=1}^{n} i² = n(n+1)/2", "∀x ∈ ℝ: x² ≥ 0", "α + β = γ", "∫₀¹ f(x) dx", "√2 ≈ 1.41421356",
    "E = mc²", "a ≠ b ∧ b ≤ c ⇒ a ≤ c", "π ≈ 3.14159", "∞ − ∞", "ℵ₀ < 2^ℵ₀", "½ + ¼ = ¾", "10⁻⁶ m = 1 µm",
    "𝔸𝔹ℂ 𝐀𝐁𝐂 𝒜ℬ𝒞", "x ⊕ y ⊗ z", "∂f/∂x", "Ⅻ Ⅳ ⅸ",
]
SPECIAL = [
    "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
    "<think>\nreasoning\n</think>\n\nanswer", "<|im_sta", "<|im_start", "<|im_start|", "im_start|>", "<|endoftext",
    "<|endoftext|><|endoftext|>", "<<|im_start|>>", "<|<|im_end|>|>", "text<|im_end|>text", " <|im_end|> ",
    "<tool_call>{\"name\": \"f\"}</tool_call>", "<tool_response>ok</tool_response>", "<|fim_prefix|>a<|fim_suffix|>b<|fim_middle|>",
    "<|vision_start|><|image_pad|><|vision_end|>", "<|box_start|>(1,2)<|box_end|>", "<|object_ref_start|>x<|object_ref_end|>",
    "<|quad_start|><|quad_end|><|vision_pad|><|video_pad|>", "<|repo_name|>doze<|file_sep|>main.cc", "<|fim_pad|>",
    "<think></think>", "<thinking>", "</think", "<THINK>", "<|IM_START|>", "<| im_start |>", "<|im_end|>\u0301",
    "e<|im_end|>\u0301", "<|endoftext|>'s", "'<|endoftext|>s", "\n<|im_start|>\n", "  <|im_start|>  ", "中<|im_end|>文",
    "😀<|endoftext|>😀", "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n",
]
ODD = [
    "\ufffd", "\ufffe", "\uffff", "\U0010ffff", "\ue000\uf8ff", "\U000f0000", "\u0378\u0379", "\U000e0001\U000e0041",
    "a\ufe0f", "\U000e0100", "\x00", "a\x00b", "\x01\x02\x03", "\x7f", "\x1b[31mred\x1b[0m", "\u180e", "\u00ad soft",
    "\u200c\u200d", "\u2060 joiner", "\u202e reversed \u202c", "\ufeffBOM", "\u034f", "\u115f\u1160", "\u3164",
    "\U0001d400\U0001d7ce", "\u2028", "\u0085", "\x1c\x1d\x1e\x1f", "\U00020000\U0002a6d6", "\u3007\u3021",
    "\u16ee\u2160\u2182", "\u0660\u0661\u0662 \u06f1\u06f2 \u0966\u0967", "\u00b2\u00b3\u00b9", "\u2070\u2074\u2089",
]
CONTRACTION_FORMS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'Re", "'rE", "'VE", "'Ve",
                     "'vE", "'M", "'LL", "'Ll", "'lL", "'D", "'\u017f", "'\u017F\u017f", "'\u212a", "'x", "'",
                     "''", "'\u2019", "\u2019s", "'1", "' s", "'ss", "'sa", "'tis", "'reading"]
WHITESPACE = [" ", "  ", "\t", "\n", "\r", "\r\n", "\n\n", "\u00a0", "\u3000", "\u2028", "\u2029", "\u200b", "\x0b",
              "\x0c", "\x85", "\u1680", "\u2000", "\u2003", "\u2009", "\u200a", "\u202f", "\u205f", "\ufeff",
              "\x1c", "\x1f", "\t\n", " \n", "\n ", " \r\n ", "\r\r\n", "\n\r"]
AFTER = ["a", "A", "1", "!", "中", "😀", "", "'s", "\u0301", "(", " x", "\u00e9"]
ALL_POOLS = [CHINESE, JAPANESE, KOREAN, OTHER_SCRIPTS, ENGLISH, EMOJI, COMBINING, FULL_WIDTH, CODE, URLS_JSON, MATH,
             SPECIAL, ODD]


def fixed_cases():
    """Every hand-written string, alone."""
    cases = [""]
    for pool in ALL_POOLS:
        cases.extend(pool)
    return cases


def contraction_cases():
    """Each contraction form between each kind of left and right neighbour."""
    cases = []
    for form in CONTRACTION_FORMS:
        for left, right in [("", ""), ("it", ""), ("it", " x"), ("IT", "s"), (" ", ""), ("1", "1"), ("中", "文"),
                            ("\n", "\n")]:
            cases.append(left + form + right)
    return cases


def whitespace_cases():
    """Each whitespace run (alone, doubled, mixed) before each kind of following character."""
    cases = []
    for ws in WHITESPACE:
        for after in AFTER:
            cases.append("x" + ws + after)
            cases.append(ws + ws + after)
    for a, b in itertools.combinations(WHITESPACE[:20], 2):
        cases.append("word" + a + b + "word")
    return cases


def long_cases():
    """Words and runs long enough to stress the BPE and the splitter."""
    return ["a" * 3000, "ab" * 800, "supercalifragilisticexpialidocious" * 20, "的" * 600, "1234567890" * 50,
            " " * 500 + "x", "\n" * 300, "!?" * 400, "-" * 1000, "=" * 64 + "\n" + "=" * 64, "😀" * 200,
            "\u00a0" * 100 + "end", "xyz" * 500 + "\t" * 10, "Ａ" * 300, "e\u0301" * 200]


def mixed_cases(rng, count):
    """Random concatenations of fragments with random separators."""
    fragments = [s for pool in ALL_POOLS for s in pool] + CONTRACTION_FORMS + WHITESPACE
    cases = []
    for _ in range(count):
        parts = []
        for _ in range(rng.randint(2, 7)):
            parts.append(rng.choice(fragments))
            parts.append(rng.choice(WHITESPACE + ["", "", "", " ", " ", ",", ".", "\n"]))
        cases.append("".join(parts))
    return cases


def character_soup(rng, count):
    """Short random strings over a hostile alphabet: each rule boundary is likely to be hit."""
    alphabet = list("aZ09 '\t\n\r.,!?-_<|>") + ["\u00a0", "\u3000", "\u2028", "\x85", "\x0b", "\x0c", "中", "é",
                                                 "\u0301", "😀", "\u200d", "\ufe0f", "\u017f", "Ⅻ", "²", "ſ", "ß"]
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 24))) for _ in range(count)]


def encode_line(text):
    line = json.dumps(text, ensure_ascii=False)
    for ch in ("\u0085", "\u2028", "\u2029"):
        line = line.replace(ch, "\\u%04x" % ord(ch))
    return line


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = os.path.dirname(os.path.abspath(__file__))
    parser.add_argument("--out", default=os.path.join(here, "corpus.jsonl"))
    args = parser.parse_args()
    rng = random.Random(20240521)
    cases = fixed_cases() + contraction_cases() + whitespace_cases() + long_cases()
    cases += mixed_cases(rng, 900) + character_soup(rng, 500)
    seen = set()
    unique = [c for c in cases if not (c in seen or seen.add(c))]
    with open(args.out, "w", encoding="utf-8", newline="\n") as f:
        for text in unique:
            f.write(encode_line(text) + "\n")
    print(f"wrote {len(unique)} strings to {args.out}")


if __name__ == "__main__":
    main()
