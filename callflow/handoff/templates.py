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


def email_followup(*, day: str, time: str, support_phone: str) -> tuple[str, str]:
    body = render(
        EMAIL_FOLLOWUP_BODY, day=day, time=time, support_email=SUPPORT_EMAIL, chat_url=CHAT_URL, support_phone=support_phone
    )
    return EMAIL_FOLLOWUP_SUBJECT, body
