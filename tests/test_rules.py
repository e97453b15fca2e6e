"""The community rules engine (the package ``server/rules/`` and its lists, ``*.toml``).

Pure tests: no server, database or network. The corpus (``tests/corpus/posts.jsonl``) is
judged split by split; ``docs/moderation.md`` reports the same tables.
"""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from pathlib import Path

import pytest

from server import rules
from server.rules import REASONS, RulesError, Ruleset, judge, normalise

CORPUS = Path(__file__).resolve().parent / "corpus" / "posts.jsonl"
CLASSES = ("crisis", "personal", "link", "contact", "clean")


# --- Normalisation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ｗｗｗ．ｅｘａｍｐｌｅ．ｃｏｍ", "www.example.com"),  # full-width
        ("ht\u200btps://x.org", "https://x.org"),  # zero-width space inside "http"
        ("p\u0430ypal.com", "paypal.com"),  # Cyrillic а
        ("РАYРАL", "paypal"),  # Cyrillic capitals
        ("ρayρal", "paypal"),  # Greek rho
        ("k1ll mys3lf", "kill myself"),  # leetspeak
        ("p@ypal 4ever 5ad", "paypal aever sad"),
        ("\u202eevil\u202c and \u2066hidden\u2069", "evil and hidden"),  # bidi controls
        ("so\u00adft hy\u00adphen, word\u2060joiner", "soft hyphen, wordjoiner"),
        ("Psicólogo, thérapeute, Übung, São", "psicologo, therapeute, ubung, sao"),
        ("Straße", "strasse"),
        ("wow!!! really??? example..com --- ok", "wow! really? example.com - ok"),
        ("too     many\t\tspaces", "too many spaces"),
        ("h t t p s", "https"),  # letters spelled out one by one
        ("S.U.I.C.I.D.E", "suicide"),
        ("I w a n t to go", "i want to go"),  # the capital I is not part of the run
        ("w w w . e x a m p l e . c o m", "www.example.com"),
        ("“quoted” ‘single’ «guillemets» – dash", '"quoted" \'single\' "guillemets" - dash'),
        ("𝐛𝐨𝐥𝐝 ⓒⓘⓡⓒⓛⓔⓓ", "bold circled"),
    ],
)
def test_normalise(text: str, expected: str) -> None:
    assert normalise(text) == expected


def test_normalise_keeps_numbers_and_email_addresses() -> None:
    assert normalise("Call 0171 2345678 at 14:32, 3-5 minutes") == (
        "call 0171 2345678 at 14:32, 3-5 minutes"
    )
    assert normalise("j0hn@gmail.com") == "john@gmail.com"  # the "@" of an address stays


# --- Each class ----------------------------------------------------------------------------------

LINKS = [
    "https://www.mindfulcarers.org/blog",
    "more at www.calmpractice.net",
    "see healingbreathwork.com",
    "slides at bit.ly/compassion",
    "psy-paris.fr has it",
    "praxis.de/kurse",
    "terapia.com.ar",
    "example dot com",
    "example (dot) org",
    "example [.] com",
    "terapia punto com",
    "formation point com",
    "achtsam punkt de",
    "h t t p s : / / x . org",
    "ｔｒａｕｍａｃａｒｅ．ｃｏｍ",
    "ht\u200btps://x.co.uk",
    "p\u0430ypal.com/donate",
    "g00gle.c0m",
    "www . lifecoach . com",
    "t.co/abc",
    "EXAMPLE.COM",
]


@pytest.mark.parametrize("text", LINKS)
def test_links_are_held(text: str) -> None:
    verdict = judge(text)
    assert (verdict.action, verdict.reason) == ("hold", "link"), verdict


CONTACTS = [
    "email me at sarah.lindqvist@gmail.com",
    "kontakt@praxis-lehmann.de",
    "ana @ gmail . com",
    "marcus dot reid at outlook dot com",
    "jen_keller [at] protonmail [dot] com",
    "jonas.weber(at)web.de",
    "andres arroba gmail punto com",
    "julien arobase gmail point com",
    "ｄａｎａ＠ｍａｉｌ．ｃｏｍ",
    "call me on +1 (303) 555-0147",
    "415 555 0199",
    "212-555-0183",
    "+44 7700 900123",
    "0 2 0 7 9 4 6 0 9 5 8",
    "+34 612 34 56 78",
    "06 12 34 56 78",
    "06.12.34.56.78",  # dotted, not a date
    "+49 (0)30 12345678",
    "0171 2345678",
    "(11) 98765-4321",
    "+33 1 42 68 53 00",
    "instagram: @mindful_anna",
    "follow @mindful.anna on tiktok",
]


@pytest.mark.parametrize("text", CONTACTS)
def test_contact_details_are_held(text: str) -> None:
    verdict = judge(text)
    assert (verdict.action, verdict.reason) == ("hold", "contact"), verdict


NOT_CONTACTS = [
    "Started at 14:32, ended at 15:05",
    "14 CE credits, 3-5 minutes each, since 2019",
    "We meet 10.30-11.45 every Tuesday",
    "Cohorts of 2019 2020 2021 2022",
    "Session on 12.03.2024 and 14.03.2024",
    "between 01.02.2024-03.02.2024 and 1/4/25",
    "ISBN 978-1-4625-4216-1",
    "the grant was 1 250 000 € in total",
    "5-4-3-2-1 grounding, 4-7-8 breathing",
    "Thanks @Kelly, great talk",
    "Day 2 of 14, module 3",
    "Call 988 in the US",
    "PHQ-9, GAD-7, DSM-5-TR, ICD-11",
]


@pytest.mark.parametrize("text", NOT_CONTACTS)
def test_numbers_that_are_not_phone_numbers_pass(text: str) -> None:
    assert judge(text).action == "publish", judge(text)


NOT_LINKS = [
    "What a session.The words stayed with me",
    "Qué hermosa sesión.Es justo lo que necesitaba",
    "Super session.Ça m'a plu",
    "I work in IT.In my team we use this",
    "e.g. this, i.e. that, the U.S. and Ph.D. etc.",
    "Dr.Lee was great",
    "Que aula linda. Com certeza vou rever",
    "el punto es que sí",
    "desde mi punto de vista",
    "point de vue intéressant",
    "slides.pdf and notes.docx",
    "version 2.0 and 3.5 hours",
]


@pytest.mark.parametrize("text", NOT_LINKS)
def test_things_that_are_not_links_pass(text: str) -> None:
    assert judge(text).action == "publish", judge(text)


CRISIS = [
    ("I want to end my life", "en"),
    ("I don't want to be here anymore", "en"),
    ("i dont want to live anymore", "en"),
    ("im going to kill myself tonight", "en"),
    ("I am going to k1ll mys3lf", "en"),
    ("I want to ki11 myself", "en"),
    ("I w a n t to die", "en"),
    ("everyone would be better off without me", "en"),
    ("i've been cutting myself again", "en"),
    ("ive been cutting myself", "en"),  # "i" joined to "'ve": no word "i" in the post
    ("im suicidal", "en"),
    ("voy a quitarme la vida", "es"),
    ("me quiero morir", "es"),
    ("ya no quiero vivir", "es"),
    ("je veux mourir", "fr"),
    ("j'ai envie d'en finir", "fr"),
    ("je ne veux plus vivre", "fr"),
    ("ich will nicht mehr leben", "de"),
    ("ich möchte sterben", "de"),
    ("Ich werde mir morgen früh das Leben nehmen", "de"),
    ("eu quero morrer", "pt"),
    ("não quero mais viver", "pt"),
]


@pytest.mark.parametrize(("text", "language"), CRISIS)
def test_first_person_crisis_is_held_and_urgent(text: str, language: str) -> None:
    for lang in (None, language):
        verdict = judge(text, language=lang)
        assert (verdict.action, verdict.reason) == ("hold", "crisis"), verdict
        assert verdict.urgent
        assert verdict.matched and verdict.matched.startswith(f"{language}.crisis")


PERSONAL = [
    "can anyone recommend a therapist in Denver",
    "Does anyone know a good couples counselor near Austin?",
    "Looking for a trauma-informed psychiatrist in Seattle",
    "my husband and I fight every night, what should I do",
    "I've been struggling with panic attacks for months. Any advice?",
    "¿alguien conoce un psicólogo en Madrid?",
    "Mi marido y yo discutimos todos los días, ¿qué hago?",
    "Quelqu'un connaît un psy à Lyon ?",
    "Mon fils fait des crises tous les soirs, que dois-je faire ?",
    "Kennt jemand eine gute Therapeutin in München?",
    "Mein Mann trinkt jeden Abend. Was soll ich tun?",
    "Alguém conhece um psicólogo em Lisboa?",
    "Meu marido não fala comigo, o que eu faço?",
]


@pytest.mark.parametrize("text", PERSONAL)
def test_personal_requests_and_referrals_are_held(text: str) -> None:
    verdict = judge(text)
    assert (verdict.action, verdict.reason) == ("hold", "personal"), verdict


CLINICAL = [
    "The suicide risk assessment part was excellent for my ED work.",
    "How do you ask a client directly about suicidal ideation?",
    "I refer clients to DBT groups.",
    "My clients often say they want to die; the reframe helped.",
    "When a teen tells me 'I want to kill myself' I now stay calm.",
    'A client told me yesterday: "I want to die." How would you respond?',
    "When clients say I want to die, I stay with it.",
    'She wrote in her journal "I want to end my life" and her mom found it.',
    'The phrase "kill myself" is used so casually by teens now.',
    'Statements like "I want to end my life" need a direct response.',
    "Trabalho no CVV e a gente ouve muito 'quero morrer'; a escuta faz diferença.",
    "I'm finally taking my life back after burnout.",
    "Er wollte mich umbringen, sagte sie in der Sitzung.",
    "I tried to kill myself at 17 and therapy saved me; thank you for this work.",
    "What should I do when a client starts dissociating mid-session?",
    "My kids are grown now. Any tips for starting a private practice?",
    "Can anyone recommend a good book on compassion fatigue?",
    "Can anyone recommend a book for therapists on grief?",
    "I recommend clients read Kristin Neff before session 3.",
    "I would never kill myself, but some days on the ward are hard.",
    "I could kill myself for forgetting my notes, ha",
    "Cuando un paciente me dice 'quiero morirme', me quedo con ese dolor.",
    "Mis pacientes a veces dicen que no quieren vivir.",
    "Quand un patient me dit « je veux mourir », je ne le rassure plus tout de suite.",
    "Je veux mourir de rire avec cet exemple",
    "Wenn Klienten sagen, sie wollen nicht mehr leben, frage ich nach Plänen.",
    'Ein Patient hat mir gestern Abend gesagt: "Ich will sterben."',  # Perfekt: participle last
    "Como vocês perguntam ao paciente sobre ideação suicida?",
    "Listening from Gombe, Nigeria. My late mother was a nurse.",
    "My husband and I watched together; he is a paramedic.",
    "A client of mine said she felt invisible at home.",
]


@pytest.mark.parametrize("text", CLINICAL)
def test_clinical_talk_and_ordinary_comments_pass(text: str) -> None:
    verdict = judge(text)
    assert verdict.action == "publish", verdict
    assert verdict.reason is None and verdict.matched is None and verdict.hits == ()


# Intent in ordinary words: no way out, a plan, a burden, goodbye letters, the means, not
# waking up, nothing to live for (docs/moderation.md, "After blind2"). Made-up
# sentences, not corpus posts.
CRISIS_INDIRECT = [
    ("Honestly I see no other way out.", "en"),
    ("I've figured out exactly how I'll do it.", "en"),
    ("I have a plan to end my life.", "en"),
    ("My kids would honestly be better off without me.", "en"),
    ("No one would even notice if I disappeared.", "en"),
    ("I feel like nothing but a burden to my family.", "en"),
    ("I've written my goodbye letters.", "en"),
    ("I've been stockpiling my sleeping pills.", "en"),
    ("I'm going to swallow every pill in the cabinet.", "en"),
    ("I'm going to jump off the bridge on my way home.", "en"),
    ("I keep thinking about jumping in front of a train.", "en"),
    ("I'd rather be dead.", "en"),
    ("I hope I don't wake up tomorrow.", "en"),
    ("I don't see the point in living anymore.", "en"),
    ("I've got nothing left to live for.", "en"),
    ("I won't be around much longer.", "en"),
    ("I cut myself again last night.", "en"),
    ("I'm going to end it for good.", "en"),  # "end it" + for/on/with: not a talk ending
    ("I'm going to end it with pills on Friday.", "en"),
    ("Ich sehe keinen anderen Ausweg.", "de"),
    ("Ich habe schon meinen Abschiedsbrief geschrieben.", "de"),
    ("Niemand würde mich vermissen.", "de"),
    ("Ich werde mich vor den Zug werfen.", "de"),
    ("Ya tengo planeado cómo hacerlo.", "es"),
    ("Nadie me extrañaría.", "es"),
    ("Me siento una carga para mi familia.", "es"),
    ("Quiero dormir para siempre.", "es"),
    ("J'ai rédigé mes lettres d'adieu.", "fr"),
    ("Personne ne me regretterait.", "fr"),
    ("Je vais me jeter du pont.", "fr"),
    ("Sou um fardo para minha família.", "pt"),
    ("Ninguém sentiria minha falta.", "pt"),
    ("Vou me jogar da ponte.", "pt"),
    ("Já escrevi minhas cartas de despedida.", "pt"),
    ("Eles estariam melhor sem mim no mundo.", "pt"),
]


@pytest.mark.parametrize(("text", "language"), CRISIS_INDIRECT)
def test_intent_in_ordinary_words_is_held_and_urgent(text: str, language: str) -> None:
    for lang in (None, language):
        verdict = judge(text, language=lang)
        assert (verdict.action, verdict.reason) == ("hold", "crisis"), verdict
        assert verdict.matched and verdict.matched.startswith(f"{language}.crisis")


# The same words in someone else's mouth, about clients, or in ordinary senses. A first draft
# of the phrases above held most of these, and the rules before it held four ("cutting myself
# some slack", "not wake up until Monday", "pas de solution simple", "não vejo saída para").
NOT_CRISIS_INDIRECT = [
    "My client said she has no way out.",
    "My patient keeps saying nobody would miss me.",
    "He was thinking about jumping off the bridge, he told the crisis line.",
    "Patients who take every pill as prescribed do better.",
    "She tried to take the whole bottle before her sister found her.",
    "Teens google how many pills it takes to die; we need to talk about that.",
    "She was going to end it that night, and the call saved her.",
    "I keep thinking about jumping ship to private practice.",
    "I keep thinking about dying well after the palliative section.",
    "I don't see the point in carrying on with paper charts.",
    "I won't be here for long today, I have clinic at 3.",
    "I cut myself again chopping onions for the potluck.",
    "I've been cutting myself some slack this term.",
    "The students are better off without me hovering.",
    "Nobody will notice if I'm gone for ten minutes, I need coffee.",
    "I hope I don't wake up with a cold tomorrow.",
    "I just want to sleep and not wake up until Monday after these night shifts.",
    "I wrote a goodbye letter to my dad after he died, like the presenter suggested.",
    "I'm drowning myself in paperwork this week.",
    "I know exactly how to do it now, thanks to this framework!",
    "Ich sehe keinen anderen Ausweg, als die Sitzung zu verschieben.",
    "Er drohte, mich zu erschießen, sagte sie in der Sitzung.",
    "Ich weiß jetzt, wie ich es mache – danke für die Methode!",
    "Ich habe mich beim Joggen wieder verletzt.",
    'Ein Patient sagte: "Ich wäre lieber tot."',
    "No veo otra salida que derivar al paciente.",
    "Ya decidí cómo hacerlo con mi grupo de adolescentes.",
    "Me corté ayer cocinando y escribo con una mano.",
    "Las clases de este curso me las voy a tomar todas.",
    'Un paciente me dijo: "soy una carga para mi familia".',
    "Une patiente a essayé de sauter du toit.",
    "Je sais déjà comment je vais m'y prendre pour la supervision.",
    "Je ne vois pas de solution simple pour ce patient.",
    "Vou tomar todas hoje à noite na festa.",
    "Já sei como vou fazer a supervisão.",
    "Não vejo saída para esse caso sem a rede.",
    "Quero pular do ônibus na próxima parada.",
    "Sie sieht keinen Grund mehr zu leben, meint ihre Mutter.",
    "Yo escondí todas las pastillas de casa cuando mi hijo empezó con ideas.",
    "Ele estaria melhor morto, disse o pai dele.",
]


@pytest.mark.parametrize("text", NOT_CRISIS_INDIRECT)
def test_the_same_words_about_clients_or_in_ordinary_senses_pass(text: str) -> None:
    verdict = judge(text)
    assert verdict.action == "publish", verdict


@pytest.mark.xfail(
    strict=True,
    reason="server/rules/crisis.py looks for the opening single quote in the text before "
    "the phrase only, so it misses a quote right before the phrase's first word",
)
def test_a_speaker_cue_before_a_single_quote_cancels_a_phrase_starting_at_the_quote() -> None:
    assert judge("A teen told me last week, 'I've been cutting myself'.").action == "publish"


# --- Event lists ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "best casino bonus here",
        "CASINO night",
        "c4sino",
        "ｃａｓｉｎｏ",
        "c\u0430sino",  # Cyrillic а
        "c\u200basino",
        "c a s i n o",
    ],
)
def test_banned_words_are_refused_however_written(text: str) -> None:
    verdict = judge(text, banned=["casino"])
    assert (verdict.action, verdict.reason) == ("refuse", "banned"), verdict
    assert verdict.matched == "banned list: casino"


def test_banned_words_match_whole_words_prefixes_and_phrases() -> None:
    assert judge("casinos", banned=["casino"]).action == "publish"
    assert judge("Scunthorpe", banned=["cunt"]).action == "publish"
    assert judge("scammers everywhere", banned=["scam*"]).reason == "banned"
    assert judge("get rich quick!", banned=["get rich quick"]).reason == "banned"
    assert judge("get richer quickly", banned=["get rich quick"]).action == "publish"
    assert judge("Crème brûlée", banned=["creme brulee"]).reason == "banned"
    assert judge("anything", banned="") == judge("anything")


def test_suspect_words_are_held() -> None:
    verdict = judge("a free webinar", suspect=["free", "discount"])
    assert (verdict.action, verdict.reason) == ("hold", "suspect")
    assert verdict.matched == "suspect list: free"
    assert judge("freedom", suspect=["free"]).action == "publish"


# --- Severity ------------------------------------------------------------------------------------


def test_reasons_are_ordered_by_severity() -> None:
    assert REASONS == ("banned", "crisis", "link", "contact", "personal", "suspect")


@pytest.mark.parametrize(
    ("text", "reason", "others"),
    [
        ("I want to die, casino", "banned", {"crisis", "suspect"}),
        ("I want to die. see example.com", "crisis", {"link"}),
        ("example.com or call 415 555 0199", "link", {"contact"}),
        ("can anyone recommend a therapist? call 415 555 0199", "contact", {"personal"}),
        ("can anyone recommend a free therapist?", "personal", {"suspect"}),
        ("a free therapist", "suspect", set()),
    ],
)
def test_the_most_severe_reason_wins(text: str, reason: str, others: set[str]) -> None:
    verdict = judge(text, banned=["casino"], suspect=["free", "casino"])
    assert verdict.reason == reason
    assert verdict.action == ("refuse" if reason == "banned" else "hold")
    assert [hit.reason for hit in verdict.hits] == [
        r for r in REASONS if r == reason or r in others
    ]
    assert verdict.matched == verdict.hits[0].rule
    assert verdict.excerpt == verdict.hits[0].excerpt


def test_language_restricts_the_phrase_lists_but_not_links_or_lists() -> None:
    assert judge("je veux mourir", language="en").action == "publish"
    assert judge("je veux mourir", language="fr-CA").reason == "crisis"
    assert judge("je veux mourir", language="xx").reason == "crisis"  # unknown: all
    assert judge("je veux mourir. www.x.org", language="en").reason == "link"
    assert judge("casino", language="es", banned=["casino"]).reason == "banned"


# --- Loading the lists ---------------------------------------------------------------------------


def copy_rules(tmp_path: Path) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(rules.RULES_DIR, target)
    return target


def test_edited_lists_are_used(tmp_path: Path) -> None:
    directory = copy_rules(tmp_path)
    path = directory / "en.toml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("phrases = [\n", 'phrases = [\n    "beam me up",\n', 1))
    edited = rules.load(directory)
    assert edited.judge("Beam me up, please").reason == "crisis"
    assert Ruleset.load(rules.RULES_DIR).judge("Beam me up, please").action == "publish"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('"i wish i (was|were|could be) dead",', '"i wish i (was|were dead",', "en.crisis.phrases"),
        ("my ~ {family}", "my ~ {famly}", "no list named {famly}"),
        ("[personal]", "[personnel]", "missing the [personal] table"),
        ("phrases = [\n", 'phrases = "oops"\nunused = [\n', "en.crisis.phrases: expected a list"),
    ],
)
def test_broken_lists_are_reported(tmp_path: Path, old: str, new: str, message: str) -> None:
    directory = copy_rules(tmp_path)
    path = directory / "en.toml"
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(RulesError, match=message.replace("[", r"\[").replace("{", r"\{")):
        rules.load(directory)


def test_every_phrase_can_be_prefiltered() -> None:
    """Speed: each phrase has anchor words, so it never has to scan a whole post."""
    for language in rules.DEFAULT.languages.values():
        for kind in ("crisis", "referral", "personal", "problem", "ask"):
            for phrase in getattr(language, kind):
                assert phrase.anchors, f"{phrase.where}: {phrase.source!r} has no anchor word"


# --- The corpus ----------------------------------------------------------------------------------


def corpus() -> list[dict[str, str]]:
    return [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines() if line]


def test_corpus_is_well_formed() -> None:
    posts = corpus()
    for post in posts:
        assert set(post) >= {"text", "expected", "reason", "language", "split"}, post
        assert post["expected"] in ("publish", "hold", "refuse")
        assert post["reason"] in (None, *REASONS)
        assert post["split"] in ("tune", "heldout")
    for cls in CLASSES:
        members = [p for p in posts if (p["reason"] or "clean") == cls]
        assert len(members) >= 30, cls
        heldout = sum(p["split"] == "heldout" for p in members) / len(members)
        assert 0.25 <= heldout <= 0.4, (cls, heldout)
    clinical = [p for p in posts if p.get("kind") == "clinical"]
    assert len(clinical) >= 30
    assert {"en", "es", "fr"} <= {p["language"] for p in posts}


def test_fresh_set_is_well_formed() -> None:
    """``fresh.jsonl``: a third set, written after the heldout run and judged once; its
    results are reported in docs/moderation.md, not asserted here."""
    path = CORPUS.with_name("fresh.jsonl")
    posts = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(posts) >= 40
    assert all(p["split"] == "fresh" and p["reason"] in (None, *REASONS) for p in posts)


def test_blind2_set_is_well_formed() -> None:
    """``blind2.jsonl``: a fourth set, written by someone else and judged once at the rules it
    found (docs/moderation.md). Clean posts say ``"reason": "clean"`` instead of null."""
    path = CORPUS.with_name("blind2.jsonl")
    posts = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(posts) == 110
    assert all(p["split"] == "blind2" and p["reason"] in CLASSES for p in posts)


def score(split: str, file: str = "posts.jsonl") -> dict[str, dict[str, list[int]]]:
    """For each class and language: [right, total]; prints the table and the misses.
    ``score("fresh", "fresh.jsonl")`` and ``score("blind2", "blind2.jsonl")`` give the tables
    of docs/moderation.md for the other sets."""
    table: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    misses = []
    path = CORPUS.with_name(file)
    for post in (json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()):
        if post["split"] != split:
            continue
        verdict = judge(post["text"])
        cls = post["reason"] or "clean"
        expected_reason = None if cls == "clean" else cls
        right = verdict.action == post["expected"] and verdict.reason == expected_reason
        for language in (post["language"], "all"):
            table[cls][language][0] += right
            table[cls][language][1] += 1
        if not right:
            misses.append(f"  {cls}/{post['language']}: got {verdict.reason}: {post['text']!r}")
    languages = [*sorted({lang for row in table.values() for lang in row} - {"all"}), "all"]
    print(f"\n{split}: right/total by class and language")
    print(f"{'class':9}" + "".join(f"{lang:>9}" for lang in languages))
    for cls in CLASSES:
        cells = [
            f"{table[cls][lang][0]}/{table[cls][lang][1]}" if lang in table[cls] else "-"
            for lang in languages
        ]
        print(f"{cls:9}" + "".join(f"{cell:>9}" for cell in cells))
    print("misses:" if misses else "no misses", *misses, sep="\n")
    return table


@pytest.mark.parametrize(("split", "least"), [("tune", 0.95), ("heldout", 0.80)])
def test_corpus_accuracy_per_class(split: str, least: float) -> None:
    table = score(split)
    for cls in CLASSES:
        right, total = table[cls]["all"]
        assert total and right / total >= least, f"{split} {cls}: {right}/{total}"
