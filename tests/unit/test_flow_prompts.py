"""Every prompt id the flows speak exists in the prompt source (sounds/prompts*.yaml), in the seed's wording."""

from __future__ import annotations

import ast
from pathlib import Path

from callflow.telephony.fake import load_prompts

FLOWS = Path(__file__).resolve().parents[2] / "callflow" / "flows"
LANGUAGES = {"fr", "en", "es", "it"}


def prompt_ids_in_flows() -> set[str]:
    """String literals the flows pass as prompts: say("x"), Question(…, "q_x", …), yes_no/choice(…, "q_x")."""
    ids: set[str] = set()
    for path in FLOWS.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            args = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            if name in ("say", "play") and args:
                ids.add(args[0])
            elif name in ("Question", "yes_no", "choice") and len(args) >= 2:
                ids.add(args[1])
    return ids


def test_every_prompt_the_flows_use_exists_in_every_language():
    prompts = load_prompts()
    used = prompt_ids_in_flows()
    assert {"greeting", "audio_check", "q_hears", "dead_line_final", "q_emergency", "q_language"} <= used
    missing = {p: LANGUAGES - set(prompts.get(p, {})) for p in used}
    assert {p: langs for p, langs in missing.items() if langs} == {}


def test_the_seed_wording():
    fr = {k: v["fr"] for k, v in load_prompts().items()}
    assert fr["greeting"] == "Bonjour, numi.support, {agent_name} à l'appareil. Je vous écoute."
    assert fr["audio_check"].startswith("Bonjour ? Je ne vous entends pas très bien.")
    assert "Tapez une fois sur votre téléphone si oui" in fr["q_noise_hears"]
    assert fr["cas_a_ok"].startswith("Parfait. Je vous attends par chat ou email")
    assert "Si vous ne m'entendez pas, tapez DEUX fois" in fr["q_hears"]
    assert "Je vais raccrocher dans 10 secondes si je n'entends rien." in fr["dead_line_final"]
    assert "Je ne raccroche pas." in fr["distress_soft"]
    assert "rappeler dans 5 minutes" in fr["q_distress_callback"]
    assert "Do you speak English?" in fr["q_language"] and "¿Habla español?" in fr["q_language"]
    assert fr["q_emergency"].startswith("Est-ce que vous avez besoin d'une aide médicale d'urgence ?")
    assert "Ne raccrochez pas." in fr["emergency_yes"]
    assert load_prompts()["lang_ok"]["en"] == "OK, I can try to help you in English. What is your issue?"
