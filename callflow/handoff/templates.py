"""The texts we send, in the seed's words (000: cas B SMS, section 6 email).

Rendered with jinja2's SandboxedEnvironment. Template *sources* are the
constants below, never caller data: agent names, numbers and times only ever
enter as variables, so « {{ … }} » or « {% … %} » in them is printed as is.
Autoescape is off: SMS and plain-text email are not HTML.
"""

from __future__ import annotations

import unicodedata

from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

_env = SandboxedEnvironment(autoescape=False, undefined=StrictUndefined, keep_trailing_newline=False)

SUPPORT_EMAIL = "support@numi.support"
CHAT_URL = "www.numi.support/chat"

# 000, cas B « 📱 SMS AUTOMATIQUE ».
SMS_CALLBACK_BY_TEXT = {
    "fr": (
        "Bonjour,\n"
        "C'est {{ agent_name }} de numi. On vient de se parler par téléphone.\n"
        "Je suis là pour vous aider.\n"
        "Répondez à ce SMS pour me dire :\n"
        "1. Quel est votre besoin ?\n"
        "2. Votre nom / prénom (pour retrouver votre dossier)\n"
        "Prenez votre temps, je vous réponds rapidement.\n"
        "{{ agent_name }} – numi.support"
    ),
    "en": (
        "Hello,\n"
        "This is {{ agent_name }} from numi. We just spoke on the phone.\n"
        "I am here to help you.\n"
        "Reply to this SMS to tell me:\n"
        "1. What do you need?\n"
        "2. Your first and last name (to find your file)\n"
        "Take your time, I will answer quickly.\n"
        "{{ agent_name }} – numi.support"
    ),
    "es": (
        "Hola:\n"
        "Soy {{ agent_name }}, de numi. Acabamos de hablar por teléfono.\n"
        "Estoy aquí para ayudarle.\n"
        "Responda a este SMS para decirme:\n"
        "1. ¿Qué necesita?\n"
        "2. Su nombre y apellido (para encontrar su expediente)\n"
        "Tómese su tiempo, le respondo enseguida.\n"
        "{{ agent_name }} – numi.support"
    ),
    "it": (
        "Buongiorno,\n"
        "Sono {{ agent_name }} di numi. Ci siamo appena sentiti al telefono.\n"
        "Sono qui per aiutarla.\n"
        "Risponda a questo SMS per dirmi:\n"
        "1. Di cosa ha bisogno?\n"
        "2. Il suo nome e cognome (per ritrovare la sua pratica)\n"
        "Con calma, le rispondo rapidamente.\n"
        "{{ agent_name }} – numi.support"
    ),
}

# The « email » choice when no address is on file: the address and how to write (section 4).
SMS_EMAIL_INSTRUCTIONS = {
    "fr": (
        "Bonjour,\n"
        "Vous pouvez nous écrire par email, à votre rythme : {{ support_email }}\n"
        "Indiquez votre nom / prénom et votre besoin, nous vous répondons rapidement.\n"
        "Vous pouvez aussi répondre directement à ce SMS.\n"
        "L'équipe numi.support"
    ),
    "en": (
        "Hello,\n"
        "You can write to us by email, at your own pace: {{ support_email }}\n"
        "Give your name and what you need, we will answer quickly.\n"
        "You can also reply to this SMS directly.\n"
        "The numi.support team"
    ),
    "es": (
        "Hola:\n"
        "Puede escribirnos por correo electrónico, a su ritmo: {{ support_email }}\n"
        "Indique su nombre y lo que necesita, le responderemos enseguida.\n"
        "También puede responder directamente a este SMS.\n"
        "El equipo de numi.support"
    ),
    "it": (
        "Buongiorno,\n"
        "Può scriverci per email, con calma: {{ support_email }}\n"
        "Indichi il suo nome e di cosa ha bisogno, le risponderemo rapidamente.\n"
        "Può anche rispondere direttamente a questo SMS.\n"
        "Il team di numi.support"
    ),
}

# 000, section 6.
EMAIL_FOLLOWUP_SUBJECT = "📞 Appel numi – Nous n'avons pas pu vous entendre"
EMAIL_FOLLOWUP_BODY = (
    "Bonjour,\n"
    "\n"
    "Vous avez appelé numi.support {{ day }} à {{ time }}, mais nous n'avons pas pu vous entendre.\n"
    "Peut-être un problème technique (micro, réseau), ou vous aviez des difficultés à parler en ce moment.\n"
    "\n"
    "💬 ON EST LÀ POUR VOUS AIDER\n"
    "\n"
    "Vous pouvez nous recontacter par :\n"
    "\n"
    "📧 Email :\n"
    "{{ support_email }}\n"
    "(Réponse sous 2h en moyenne)\n"
    "\n"
    "💬 Chat en ligne :\n"
    "{{ chat_url }}\n"
    "(Disponible 9h–18h)\n"
    "\n"
    "📞 Rappel :\n"
    "{{ support_phone }}\n"
    "(Si c'était un problème technique, retentez maintenant)\n"
    "\n"
    "📱 SMS :\n"
    "Répondez directement à ce numéro par SMS si plus facile pour vous\n"
    "\n"
    "🆘 URGENCE ?\n"
    "Si votre situation est urgente (sécurité, santé), appelez :\n"
    "- 15 (SAMU – urgence médicale)\n"
    "- 17 (Police)\n"
    "- 18 (Pompiers)\n"
    "\n"
    "On reste disponible,\n"
    "L'équipe numi.support\n"
)


# 000 section 6 for callers who chose their language (cas E): the same email, translated.
EMAIL_FOLLOWUP_SUBJECTS = {
    "fr": EMAIL_FOLLOWUP_SUBJECT,
    "en": "📞 numi call – We could not hear you",
    "es": "📞 Llamada a numi – No pudimos oírle",
    "it": "📞 Chiamata a numi – Non siamo riusciti a sentirla",
}
EMAIL_FOLLOWUP_BODIES = {
    "fr": EMAIL_FOLLOWUP_BODY,
    "en": (
        "Hello,\n\nYou called numi.support {{ day }} at {{ time }}, but we could not hear you.\n"
        "Perhaps a technical problem (microphone, network), or it was hard for you to speak at that moment.\n\n"
        "💬 WE ARE HERE TO HELP\n\nYou can contact us again by:\n\n"
        "📧 Email:\n{{ support_email }}\n(Answer within 2 hours on average)\n\n"
        "💬 Online chat:\n{{ chat_url }}\n(Available 9am–6pm)\n\n"
        "📞 Call back:\n{{ support_phone }}\n(If it was a technical problem, try again now)\n\n"
        "📱 SMS:\nReply to this number by SMS if that is easier for you\n\n"
        "🆘 EMERGENCY?\nIf your situation is urgent (safety, health), call:\n"
        "- 15 (SAMU – medical emergency)\n- 17 (Police)\n- 18 (Fire brigade)\n- 112 (European emergency number)\n\n"
        "We remain available,\nThe numi.support team\n"
    ),
    "es": (
        "Hola:\n\nLlamó a numi.support {{ day }} a las {{ time }}, pero no pudimos oírle.\n"
        "Quizás un problema técnico (micrófono, red), o le costaba hablar en ese momento.\n\n"
        "💬 ESTAMOS AQUÍ PARA AYUDARLE\n\nPuede volver a contactarnos por:\n\n"
        "📧 Correo electrónico:\n{{ support_email }}\n(Respuesta en 2 horas de media)\n\n"
        "💬 Chat en línea:\n{{ chat_url }}\n(Disponible de 9 h a 18 h)\n\n"
        "📞 Llamada:\n{{ support_phone }}\n(Si fue un problema técnico, inténtelo ahora)\n\n"
        "📱 SMS:\nResponda a este número por SMS si le resulta más fácil\n\n"
        "🆘 ¿URGENCIA?\nSi su situación es urgente (seguridad, salud), llame al:\n"
        "- 15 (SAMU – urgencia médica)\n- 17 (Policía)\n- 18 (Bomberos)\n- 112 (número europeo de emergencias)\n\n"
        "Seguimos a su disposición,\nEl equipo de numi.support\n"
    ),
    "it": (
        "Buongiorno,\n\nHa chiamato numi.support {{ day }} alle {{ time }}, ma non siamo riusciti a sentirla.\n"
        "Forse un problema tecnico (microfono, rete), oppure in quel momento aveva difficoltà a parlare.\n\n"
        "💬 SIAMO QUI PER AIUTARLA\n\nPuò ricontattarci tramite:\n\n"
        "📧 Email:\n{{ support_email }}\n(Risposta in media entro 2 ore)\n\n"
        "💬 Chat online:\n{{ chat_url }}\n(Disponibile dalle 9 alle 18)\n\n"
        "📞 Richiamata:\n{{ support_phone }}\n(Se era un problema tecnico, riprovi ora)\n\n"
        "📱 SMS:\nRisponda a questo numero via SMS se le è più facile\n\n"
        "🆘 URGENZA?\nSe la sua situazione è urgente (sicurezza, salute), chiami:\n"
        "- 15 (SAMU – emergenza medica)\n- 17 (Polizia)\n- 18 (Vigili del fuoco)\n- 112 (numero unico europeo di emergenza)\n\n"
        "Restiamo a disposizione,\nIl team di numi.support\n"
    ),
}

#: « aujourd'hui » / « le 19/12/2025 » in each language (the email's {{ day }}).
DAY_WORDS = {
    "fr": ("aujourd'hui", "le {date}"),
    "en": ("today", "on {date}"),
    "es": ("hoy", "el {date}"),
    "it": ("oggi", "il {date}"),
}


def clean_value(value: object, max_length: int = 60) -> str:
    """A variable as plain one-line text: no control characters, bounded length."""
    text = " ".join(str(value).split())
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C")
    return text[:max_length]


def render(source: str, **variables: object) -> str:
    """Render one of the constant sources above with cleaned variables."""
    return _env.from_string(source).render(**{k: clean_value(v) for k, v in variables.items()})


def _pick(table: dict[str, str], language: str) -> str:
    return table.get(language) or table["fr"]


def sms_callback_by_text(agent_name: str, language: str = "fr") -> str:
    return render(_pick(SMS_CALLBACK_BY_TEXT, language), agent_name=agent_name or "numi")


def sms_email_instructions(language: str = "fr") -> str:
    return render(_pick(SMS_EMAIL_INSTRUCTIONS, language), support_email=SUPPORT_EMAIL)


def email_followup(*, day: str, time: str, support_phone: str, language: str = "fr") -> tuple[str, str]:
    subject = EMAIL_FOLLOWUP_SUBJECTS.get(language, EMAIL_FOLLOWUP_SUBJECT)
    body = render(
        EMAIL_FOLLOWUP_BODIES.get(language, EMAIL_FOLLOWUP_BODY), day=day, time=time, support_email=SUPPORT_EMAIL,
        chat_url=CHAT_URL, support_phone=support_phone,
    )
    return subject, body


# 001 phase 6 « Email de clôture » to the client, and §4.1 « Email au hotliner ».
ESCALATION_CLIENT_SUBJECT = "📧 Résolution de votre demande – numi.support"
ESCALATION_CLIENT_BODY = (
    "Bonjour,\n"
    "\n"
    "Merci de m'avoir permis de discuter de votre situation aujourd'hui.\n"
    "Voici ce qui a été décidé suite à notre appel :\n"
    "\n"
    "📋 DÉCISION\n"
    "{{ decision }}\n"
    "\n"
    "📅 PROCHAINES ÉTAPES\n"
    "{{ steps }}\n"
    "\n"
    "❓ AVEZ-VOUS BESOIN D'AIDE ?\n"
    "Je reste à votre disposition personnellement pour cette demande.\n"
    "Répondez à cet email ou écrivez-nous : {{ support_email }}\n"
    "\n"
    "Merci de votre confiance,\n"
    "{{ supervisor }}\n"
    "Superviseur numi.support\n"
)
ESCALATION_HOTLINER_SUBJECT = "✅ Escalade résolue – Feedback pour {{ hotliner }}"
ESCALATION_HOTLINER_BODY = (
    "Bonjour {{ hotliner }},\n"
    "\n"
    "Vous avez escaladé un appel ({{ call_id }}).\n"
    "Voici comment ça s'est terminé :\n"
    "\n"
    "📋 DÉCISION PRISE\n"
    "{{ decision }}\n"
    "\n"
    "👍 FEEDBACK SUR VOTRE GESTION\n"
    "{{ feedback }}\n"
    "\n"
    "{{ supervisor }}\n"
)
DECISION_WORDS = {
    "approuvee": "Demande approuvée",
    "alternative": "Alternative proposée",
    "refusee": "Demande refusée (politique numi)",
    "escaladee": "Transmise à la direction",
}


def escalation_emails(*, decision: str, value_eur: float | None, reason: str, steps: list[str], supervisor: str,
                      hotliner: str, feedback: str, call_id: str) -> tuple[tuple[str, str], tuple[str, str]]:
    """((client subject, body), (hotliner subject, body)) — variables cleaned, sources constant."""
    words = DECISION_WORDS.get(decision, decision)
    if value_eur is not None:
        words += f" ({value_eur:.0f} €)"
    if reason:
        words += f" – {clean_value(reason, 300)}"
    listed = "\n".join(f"- {clean_value(step, 200)}" for step in steps) or "- (aucune)"
    client = (ESCALATION_CLIENT_SUBJECT,
              _env.from_string(ESCALATION_CLIENT_BODY).render(decision=words, steps=listed, support_email=SUPPORT_EMAIL,
                                                              supervisor=clean_value(supervisor or "Le superviseur")))
    hot = clean_value(hotliner or "l'équipe")
    hotliner_mail = (_env.from_string(ESCALATION_HOTLINER_SUBJECT).render(hotliner=hot),
                     _env.from_string(ESCALATION_HOTLINER_BODY).render(
                         hotliner=hot, call_id=clean_value(call_id), decision=words,
                         feedback=clean_value(feedback or "Merci pour le briefing.", 1000),
                         supervisor=clean_value(supervisor or "Le superviseur")))
    return client, hotliner_mail
