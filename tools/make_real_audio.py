#!/usr/bin/env python3
"""Build the real-recording evaluation set of the caller-audio classifier (issue 12).

    python tools/make_real_audio.py [--out tests/audio/real] [--cache /var/tmp/callflow-real-audio]

Every clip is made from recordings that ship in Debian packages (downloaded with
`apt-get download`, unpacked with `dpkg-deb -x` into the cache: no install, no root),
taken through one phone chain: mono, 8 kHz, 300–3400 Hz band-pass (sox `sinc`), mixed,
then G.711 μ-law **once** (the file written is the μ-law bytes). Where nothing real
exists the clip is synthetic and its manifest line says so: line tones (defined by
ITU-T E.180 / national specs: they are generated signals anyway), digital silence (a
dead line is digital silence), breathing (no package ships real breathing) and line hiss.

`holdout2` (issue 12, second round) is made the same way from packages the first two splits
do not use (freepats, openttd-opensfx, sound-icons, extremetuxracer-data, klettres-data,
sound-theme-freedesktop) and was never tuned on either. `holdout3` (issue 12, third round) in turn
from seven more (lmms-common, simutrans-pak64, warzone2100-data, frozen-bubble-data,
asterisk-prompt-fr-armelle, asterisk-prompt-es-co, baresip-core), with real breaths and recorded tones.
`holdout4` (issue 12, fourth round) from twelve more (torcs-data, scorched3d-data, 7kaa-data,
openarena-data, trigger-rally-data, wesnoth-1.16-data, megaglest-data, ktuberling-data,
linphone-common, warmux-data, freeciv-data, boswars-data); it is scored once, by the lead.

Output: OUT/<split>/<label>/<name>.ulaw (6 s, raw 8 kHz μ-law) and OUT/<split>/<label>/MANIFEST.tsv
(name, real|synthetic, sources, how it was made). Splits use disjoint sources:
`dev` is what the classifier was tuned on; `holdout` comes from other recordings
(other drum kits and tap sources, other ambiences, other speakers, other countries'
tones) and was scored once, at the end. The composition is seeded: re-running the
script with the same package versions rewrites the same bytes.

Sources and licences: tests/audio/real/MANIFEST.md.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

import make_test_audio as synth  # noqa: E402  (seeded synthetic breathing and hiss)

SR = 8000
CLIP_SECONDS = 6.0
N = int(CLIP_SECONDS * SR)
DEAD_LINE_SECONDS = 10.0

#: Debian packages read (bookworm). Versions are recorded in the manifests.
PACKAGES = (
    "hydrogen-drumkits",
    "tuxpaint-data",
    "pingus-data",
    "lincity-ng-data",
    "hedgewars-data",
    "asterisk-core-sounds-fr-gsm",
    "asterisk-core-sounds-en-gsm",
    # holdout2 only (never tuned on): other instruments, effects, ambiences, voices, tones
    "freepats",
    "openttd-opensfx",
    "sound-icons",
    "extremetuxracer-data",
    "klettres-data",
    "sound-theme-freedesktop",
    # holdout3 only (issue 12, third round; never tuned on): drum and effect samples, city-builder
    # ambiences, another game's voices and vehicles, another French and a Spanish prompt voice,
    # a softphone's recorded tones, real breaths and a snore
    "lmms-common",
    "simutrans-pak64",
    "warzone2100-data",
    "frozen-bubble-data",
    "asterisk-prompt-fr-armelle",
    "asterisk-prompt-es-co",
    "baresip-core",
    # holdout4 only (issue 12, fourth round; never tuned on, scored once by the lead): racing-car
    # engines, jets, a helicopter, a city, a cheering crowd, a factory, weather, field ambiences,
    # UI clicks, anvil and box knocks, children's-game words in 12 languages, rally co-drivers and
    # unit voices, a softphone's recorded ringback, a real gasp for breath
    "torcs-data",
    "scorched3d-data",
    "7kaa-data",
    "openarena-data",
    "trigger-rally-data",
    "wesnoth-1.16-data",
    "megaglest-data",
    "ktuberling-data",
    "linphone-common",
    "warmux-data",
    "freeciv-data",
    "boswars-data",
)

_KITS = "hydrogen-drumkits/usr/share/hydrogen/data/drumkits"
_CITY = "lincity-ng-data/usr/share/games/lincity-ng/sounds"
_HOGS = "hedgewars-data/usr/share/games/hedgewars/Data/Sounds/voices"
_PATS = "freepats/usr/share/midi/freepats/Drum_000"
_SFX = "openttd-opensfx/usr/share/games/openttd/baseset/opensfx/opensfx.cat.d"  # unpacked by unpack_opensfx
_ETR = "extremetuxracer-data/usr/share/games/etr/sounds"
_KLETTRES = "klettres-data/usr/share/klettres"
_FDO = "sound-theme-freedesktop/usr/share/sounds/freedesktop/stereo"
_LMMS = "lmms-common/usr/share/lmms/samples"
_SIMU = "simutrans-pak64/usr/share/games/simutrans/pak/sound"
_WZ = "warzone2100-data/usr/share/games/warzone2100/base.wz.d/audio"  # unpacked by unpack_warzone
_FB = "frozen-bubble-data/usr/share/games/frozen-bubble/snd"
_BARESIP = "baresip-core/usr/share/baresip"
_TORCS = "torcs-data/usr/share/games/torcs/data/sound"
_S3D = "scorched3d-data/usr/share/games/scorched3d/data/globalmods"
_7KAA = "7kaa-data/usr/share/games/7kaa/SOUND"
_OA = "openarena-data/usr/share/games/openarena/baseoa/pak0.pk3.d/sound"  # unpacked by unpack_zips
_TRIGGER = "trigger-rally-data/usr/share/games/trigger-rally/data.zip.d/sounds"  # unpacked by unpack_zips
_WESNOTH = "wesnoth-1.16-data/usr/share/games/wesnoth/1.16"
_GLEST = "megaglest-data/usr/share/games/megaglest"
_TUBERLING = "ktuberling-data/usr/share/ktuberling/sounds"
_LINPHONE = "linphone-common/usr/share/sounds/linphone"
_WARMUX = "warmux-data/usr/share/games/warmux/sound/default"
_FREECIV = "freeciv-data/usr/share/games/freeciv/stdsounds"
_BOSWARS = "boswars-data/usr/share/games/boswars"


def _sfx(*numbers: int) -> list[str]:
    """OpenSFX sounds by their number in opensfx.cat (the names are in its entries and in the manifest)."""
    return [f"{_SFX}/{n:02d}-*.wav" for n in numbers]

#: Real hits used as taps: sticks, rims, woodblocks, claves, clicks (a knuckle, a nail or a
#: pen on plastic is the same kind of short broadband impulse). Disjoint sources per split.
TAP_SOURCES = {
    "dev": [
        f"{_KITS}/ForzeeStereo/Stick-*.wav",
        f"{_KITS}/ForzeeStereo/RimClick-*.wav",
        f"{_KITS}/Gimme A Hand 1.0/WoodBlock-*.wav",
        f"{_KITS}/Gimme A Hand 1.0/Clave-*.wav",
        f"{_KITS}/Millo-Drums_v.1/stick_Woody.flac",
        "tuxpaint-data/usr/share/tuxpaint/sounds/click.wav",
    ],
    "holdout": [
        f"{_KITS}/The Black Pearl 1.0/PearlSideStick-*.wav",
        f"{_KITS}/Millo_MultiLayered2/rim_*.flac",
        f"{_KITS}/ColomboAcousticDrumkit/stick-rim-9.flac",
        f"{_KITS}/ElectricEmpireKit/EE_Click.flac",
        f"{_KITS}/VariBreaks/VP Click.flac",
        "tuxpaint-data/usr/share/tuxpaint/sounds/keyclick.wav",
        "pingus-data/usr/share/games/pingus/data/sounds/tick.wav",
        f"{_CITY}/Click.wav",
    ],
    # holdout2: General MIDI drum samples (freepats: finger snap, sticks, rim, hand clap,
    # claves, wood blocks, metronome click), sound-icons' percussion, Tux Racer's tree hit.
    "holdout2": [
        f"{_PATS}/026_Snap.pat.wav",
        f"{_PATS}/031_Sticks.pat.wav",
        f"{_PATS}/037_Stick_Rim.pat.wav",
        f"{_PATS}/039_Clap_Hand.pat.wav",
        f"{_PATS}/075_Claves.pat.wav",
        f"{_PATS}/076_Wood_Block_1_High.pat.wav",
        f"{_PATS}/077_Wood_Block_2_Low.pat.wav",
        f"{_PATS}/033_Metronome_Click.pat.wav",
        "sound-icons/usr/share/sounds/sound-icons/percussion-*.wav",
        f"{_ETR}/tree_hit.wav",
    ],
    # holdout3: LMMS's drum and percussion samples (claves, rims, side stick, wood, hits, metronome,
    # finger snap) and Simutrans' click and gavel (a knock on wood).
    "holdout3": [
        f"{_LMMS}/drums/clav0*.ogg",
        f"{_LMMS}/drums/rim01.ogg",
        f"{_LMMS}/drums/nasty_rim01.ogg",
        f"{_LMMS}/drums/snare_rim01.ogg",
        f"{_LMMS}/drums/sidestick01.ogg",
        f"{_LMMS}/drums/wood01.ogg",
        f"{_LMMS}/misc/hit02.ogg",  # hit01.ogg is Vorbis inside a RIFF header, which sox does not read
        f"{_LMMS}/misc/metronome0*.ogg",
        f"{_LMMS}/misc/snaph01.ogg",
        f"{_SIMU}/click.wav",
        f"{_SIMU}/gavel.wav",
    ],
    # holdout4: knocks (MegaGlest's anvil strikes, Warmux's box hitting the ground, Freeciv's wood
    # breaking) and clicks (Wesnoth's button, MegaGlest's click, OpenArena's menu clicks, Warmux's
    # clicks and step)
    "holdout4": [
        f"{_GLEST}/techs/megapack/commondata/sounds/anvil*.wav",
        f"{_GLEST}/techs/megapack/commondata/sounds/tech_click.wav",
        f"{_WARMUX}/misc/box_hitting_ground.ogg",
        f"{_WARMUX}/misc/step.ogg",
        f"{_WARMUX}/misc/clic.ogg",
        f"{_WARMUX}/misc/character_change.ogg",
        f"{_FREECIV}/woodbrk.ogg",
        f"{_WESNOTH}/sounds/button.wav",
        f"{_OA}/misc/menu2.wav",
        f"{_OA}/misc/menu3.wav",
    ],
}

#: Real ambiences (lincity-ng's field recordings): engines, trains, aircraft, wind,
#: crowds, machines, traffic. Groups, not files, are split (files of a group are takes
#: of one place).
NOISE_SOURCES = {
    "dev": {
        "traffic": ["TraficHigh"], "train": ["RailTrain"], "aircraft": ["ParklandPlane"],
        "crowd": ["SportsCroud", "MarketFull"], "machines": ["IndustryHigh", "CoalMine", "PowerCoal"],
        "harbour": ["Harbor"], "wind": ["WindMill"], "fire": ["Fire"], "farm": ["Farm"],
    },
    "holdout": {
        "traffic": ["TraficLow", "DirtTrack"], "jet/rocket": ["Rocket", "RocketTakeoff"],
        "crowd": ["MarketMed", "School", "University"], "machines": ["IndustryLight", "OreMine", "Mill", "Recycle"],
        "workshop": ["Blacksmith", "MonumentConstruction"], "wind": ["WindMillHTech"], "water": ["Water"],
        "town": ["ResidentialHigh", "Health"],
    },
    # holdout2: OpenSFX's field recordings (freesound.org takes, CC BY / BY-SA / CC0) and Tux
    # Racer's slides. Patterns with a "/" are files; other names are lincity-ng groups.
    "holdout2": {
        "train": _sfx(4, 5, 10, 65, 71), "aircraft": _sfx(8, 9, 24, 59, 61), "road vehicles": _sfx(25, 27, 28),
        "crowd": _sfx(29, 30), "machines": _sfx(11, 33, 39, 40, 56), "wind": _sfx(57), "animals": _sfx(37, 38, 68),
        "birds": _sfx(66, 72), "sliding (snow, ice, rock)": [f"{_ETR}/{k}_slide.wav" for k in ("snow", "ice", "rock", "grass")],
    },
    # holdout3: Simutrans' ambiences, Warzone 2100's vehicles, LMMS's applause and crowd.
    "holdout3": {
        "road vehicles": [f"{_SIMU}/truck.wav", f"{_SIMU}/bus.wav"], "train": [f"{_SIMU}/diesel.wav", f"{_SIMU}/steam.wav"],
        "aircraft": [f"{_SIMU}/comet-jet.wav", f"{_SIMU}/planelow.wav", f"{_WZ}/sfx/vehicle/vtol-move.ogg"],
        "machines": [f"{_SIMU}/jackhammer.wav", f"{_SIMU}/buzzsaw.wav", f"{_SIMU}/tree-cutting.wav"],
        "tracked and hover vehicles": [f"{_WZ}/sfx/vehicle/tread.ogg", f"{_WZ}/sfx/vehicle/hovmove.ogg", f"{_WZ}/sfx/vehicle/con-move.ogg"],
        "harbour and water": [f"{_SIMU}/dock.wav", f"{_SIMU}/Water.wav"],
        "crowd and applause": [f"{_LMMS}/misc/applause01.ogg", f"{_LMMS}/misc/raving_crowd01.ogg"],
        "animals": [f"{_SIMU}/seagulls.wav", f"{_SIMU}/horse.wav"], "wind": [f"{_SIMU}/arctic.wav", f"{_SIMU}/desert.wav"],
    },
    # holdout4: TORCS' and Trigger Rally's car engines, Scorched 3D's jets, Cessna, helicopters, city,
    # cheering crowd, factory and tanks, Seven Kingdoms' weather, OpenArena's machines and wind,
    # Wesnoth's ambiences.
    "holdout4": {
        "racing car engines": [f"{_TORCS}/{n}.wav" for n in ("ferrarif355", "porsche_engine", "renault-v10", "lotus", "206_engine", "gt40")] + [f"{_TRIGGER}/engine.wav"],
        "jets and a Cessna": [f"{_S3D}/none/data/wav/misc/{n}.wav" for n in ("f16_1", "f16_2", "f18_1", "jet", "t38")] + [f"{_S3D}/apoc/data/wav/misc/cessna.wav"],
        "helicopters": [f"{_S3D}/none/data/wav/misc/apache_1.wav", f"{_S3D}/apoc/data/wav/misc/helicopter.wav"],
        "tanks and hovercraft": [f"{_S3D}/none/data/wav/movement/tankmove.wav", f"{_FREECIV}/Tread.ogg", f"{_FREECIV}/THover.ogg"],
        "city traffic": [f"{_S3D}/apoc/data/wav/misc/citysounds.wav", f"{_S3D}/apoc/data/wav/misc/firetruck.wav"],
        "cheering crowd": [f"{_S3D}/apoc/data/wav/misc/cheeringloop.wav"],
        "factory and machines": [f"{_S3D}/apoc/data/wav/misc/factoryloop1.wav", f"{_OA}/world/machinerydrone01.wav", f"{_OA}/world/machinerydrone02.wav", f"{_OA}/world/tim_machine.wav", f"{_OA}/world/fan4.wav"],
        "wind": [f"{_7KAA}/WIND.WAV", f"{_OA}/world/wind1.wav", f"{_OA}/world/wind2.wav", f"{_TRIGGER}/wind.wav", f"{_GLEST}/tilesets/winter/sounds/wind.ogg"],
        "rain and sea": [f"{_7KAA}/RAIN.WAV", f"{_S3D}/none/data/wav/misc/rain.wav", f"{_S3D}/none/data/wav/misc/oceanwaves.wav", f"{_WESNOTH}/data/core/sounds/ambient/ship.ogg"],
        "fire": [f"{_7KAA}/FIRE.WAV", f"{_WESNOTH}/data/core/sounds/ambient/campfire.ogg", f"{_OA}/world/fire1.wav"],
        "gravel and road": [f"{_TRIGGER}/gravel.wav", f"{_TORCS}/road-ride.wav"],
        "animals": [f"{_WESNOTH}/data/core/sounds/ambient/morning.ogg", f"{_S3D}/none/data/wav/misc/frogs.wav", f"{_S3D}/apoc/data/wav/misc/cows.wav", f"{_S3D}/apoc/data/wav/misc/sheep.wav"],
    },
}
#: Quiet ambiences used as room noise under taps and as "silence" beds.
ROOM_SOURCES = {"dev": ["Green", "ParklandLake", "ResidentialLow"], "holdout": ["ResidentialLowLow", "ResidentialMed", "PowerSolar"],
                "holdout2": _sfx(36, 52),  # a sheep field in summer, wind
                "holdout3": [f"{_SIMU}/forest.wav", f"{_SIMU}/tropic.wav"],
                "holdout4": [f"{_WESNOTH}/data/core/sounds/ambient/birds1.ogg", f"{_WESNOTH}/data/core/sounds/ambient/night.ogg"]}

#: Real speech: Asterisk prompts (June, fr_CA; Allison, en_US) and Hedgewars voice packs (actors).
SPEECH_SOURCES = {
    "dev": {"prompts": ["asterisk-core-sounds-fr-gsm/usr/share/asterisk/sounds/fr_CA_f_June/*.gsm"], "hash": 0,
            "voices": [f"{_HOGS}/{v}/*.ogg" for v in ("Default", "British", "Classic", "Mobster")]},
    "holdout": {"prompts": ["asterisk-core-sounds-fr-gsm/usr/share/asterisk/sounds/fr_CA_f_June/*.gsm",
                            "asterisk-core-sounds-en-gsm/usr/share/asterisk/sounds/en_US_f_Allison/*.gsm"], "hash": 1,
                "voices": [f"{_HOGS}/{v}/*.ogg" for v in ("Pirate", "Russian", "Surfer", "Default_es", "HillBilly")]},
    # holdout2: KLettres' recorded letters and syllables (teachers and parents, 7 languages, French
    # first) and the freedesktop sound theme's spoken channel names.
    "holdout2": {"prompts": [f"{_KLETTRES}/{lang}/*/*.ogg" for lang in ("fr", "de", "en", "it", "nl", "ru", "es")], "hash": None,
                 "voices": [f"{_FDO}/audio-channel-*.oga", f"{_KLETTRES}/fr/*/*.ogg"]},
    # holdout3: Armelle's French prompts and a Colombian Spanish voice (Asterisk); Warzone 2100's
    # voice actors (mission messages, tutorial, taunts).
    "holdout3": {"prompts": ["asterisk-prompt-fr-armelle/usr/share/asterisk/sounds/fr/*.gsm",
                             "asterisk-prompt-es-co/usr/share/asterisk/sounds/es/*.gsm"], "hash": None,
                 "voices": [f"{_WZ}/tutorial/*.ogg", f"{_WZ}/memressp/*/*.ogg", f"{_WZ}/taunts/*/*.ogg"]},
    # holdout4: KTuberling's words recorded in 12 languages (French, German, Catalan, Danish, Russian,
    # Greek, Lithuanian, Ukrainian, Galician, Slovenian, Italian, Dutch); Trigger Rally's three co-drivers,
    # Bos Wars' tutorial, MegaGlest's unit voices (acknowledgements), Linphone's « hello ».
    "holdout4": {"prompts": [f"{_TUBERLING}/{lang}/*.wav" for lang in ("fr", "de", "ca", "da", "ru", "el", "lt", "uk", "gl", "sl", "it", "nl")], "hash": None,
                 "voices": [f"{_TRIGGER}/codriver/*/*.wav", f"{_BOSWARS}/campaigns/tutorial/*.wav",
                            *(f"{_GLEST}/techs/megapack/commondata/sounds/{unit}_ack*.wav"  # the human units (not cows, pigs, daemons)
                              for unit in ("archer", "archmage", "axe_thrower", "guard", "horseman", "swordman", "technician", "worker")),
                            f"{_LINPHONE}/hello8000.wav"]},
}

#: Line tones (synthetic by nature): (name, [(f1, f2)], cadence [(on, off), …] or None = steady).
TONES = {
    "dev": [
        ("FR dial 440 Hz", (440,), None),
        ("FR ringback 440 Hz 1.5/3.5", (440,), [(1.5, 3.5)]),
        ("FR busy 440 Hz 0.5/0.5", (440,), [(0.5, 0.5)]),
        ("US dial 350+440", (350, 440), None),
        ("US ringback 440+480 2/4", (440, 480), [(2.0, 4.0)]),
        ("US busy 480+620 0.5/0.5", (480, 620), [(0.5, 0.5)]),
        ("fax CNG 1100 Hz 0.5/3", (1100,), [(0.5, 3.0)]),
    ],
    "holdout": [
        ("EU dial 425 Hz", (425,), None),
        ("EU ringback 425 Hz 1/4", (425,), [(1.0, 4.0)]),
        ("EU busy 425 Hz 0.5/0.5", (425,), [(0.5, 0.5)]),
        ("UK ringback 400+450 .4/.2/.4/2", (400, 450), [(0.4, 0.2), (0.4, 2.0)]),
        ("UK busy 400 Hz .375/.375", (400,), [(0.375, 0.375)]),
        ("fax CED / modem answer 2100 Hz", (2100,), None),
        ("modem V.21 FSK 980/1180 Hz", "fsk", None),
    ],
    # holdout2: two recorded tones (the freedesktop sound theme's busy and calling), other countries, other modems
    "holdout2": [
        ("recorded busy (freedesktop phone-outgoing-busy)", f"{_FDO}/phone-outgoing-busy.oga", None),
        ("recorded ringback (freedesktop phone-outgoing-calling)", f"{_FDO}/phone-outgoing-calling.oga", None),
        ("DE busy 425 Hz .48/.48", (425,), [(0.48, 0.48)]),
        ("JP dial 400 Hz", (400,), None),
        ("US reorder 480+620 .25/.25", (480, 620), [(0.25, 0.25)]),
        ("Bell 103 answer 2225 Hz", (2225,), None),
        ("modem V.21 channel 2 FSK 1650/1850 Hz", "fsk2", None),
    ],
    # holdout3: a softphone's recorded tones (baresip), other countries, other modems (V.23 is the
    # Minitel's; ANSam is V.8's answer tone, 2100 Hz amplitude-modulated at 15 Hz)
    "holdout3": [
        ("recorded busy (baresip busy.wav)", f"{_BARESIP}/busy.wav", None),
        ("recorded ringback (baresip ringback.wav)", f"{_BARESIP}/ringback.wav", None),
        ("recorded error tone (baresip error.wav)", f"{_BARESIP}/error.wav", None),
        ("IT busy 425 Hz .2/.2", (425,), [(0.2, 0.2)]),
        ("modem V.23 FSK 1300/2100 Hz (Minitel)", "fsk23", None),
        ("ANSam 2100 Hz AM 15 Hz", "ansam", None),
        ("Bell 202 FSK 1200/2200 Hz", "fsk202", None),
    ],
    # holdout4: a softphone's recorded ringback (Linphone), the SIT before a recorded error message
    # (ITU-T E.180: 913.8/1370.6/1776.7 Hz), UK dial 350+440, Italian dial (425 Hz .2/.2/.6/1), an
    # Australian-style 3-tone ringback, fax CED with phase reversals (T.30 / V.25), V.22 DPSK (answerer, 2400 Hz)
    "holdout4": [
        ("recorded ringback (linphone ringback.wav)", f"{_LINPHONE}/ringback.wav", None),
        ("SIT 913.8/1370.6/1776.7 Hz then pause", "sit", None),
        ("UK dial 350+440 Hz", (350, 440), None),
        ("IT dial 425 Hz .2/.2/.6/1", (425,), [(0.2, 0.2), (0.6, 1.0)]),
        ("ringback 400+425+450 Hz .4/.2/.4/2", (400, 425, 450), [(0.4, 0.2), (0.4, 2.0)]),
        ("fax CED 2100 Hz, phase reversed every 450 ms", "ced_reversals", None),
        ("modem V.22 DPSK 600 baud, 2400 Hz carrier", "v22", None),
    ],
}

COUNTS = {"taps_1": 18, "taps_2": 18, "taps_3": 18, "background_noise": 30, "speech": 16, "breathing": 10,
          "silence": 8, "dead_line": 6, "line_tone": 14}


# ---------------------------------------------------------------------------- sources
def fetch_packages(cache: Path) -> dict[str, str]:
    """apt-get download + dpkg-deb -x each package into cache/x/<package>; returns versions."""
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    versions = {}
    for package in PACKAGES:
        target = cache / "x" / package
        found = sorted(debs.glob(f"{package}_*.deb"))
        if not found:
            subprocess.run(["apt-get", "download", "-q", package], cwd=debs, check=True)
            found = sorted(debs.glob(f"{package}_*.deb"))
        deb = found[-1]
        versions[package] = deb.name.split("_")[1].replace("%3a", ":")
        if not target.is_dir():
            target.mkdir(parents=True)
            subprocess.run(["dpkg-deb", "-x", str(deb), str(target)], check=True)
    unpack_opensfx(cache / "x")
    unpack_freepats(cache / "x")
    unpack_warzone(cache / "x")
    unpack_zips(cache / "x")
    return versions


def _write_wav(path: Path, pcm: np.ndarray, rate: int) -> None:
    import wave

    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.asarray(pcm, dtype="<i2").tobytes())


def unpack_opensfx(x: Path) -> None:
    """OpenTTD's opensfx.cat → one WAV per sound (NN-name.wav) beside it, in opensfx.cat.d/.

    The .cat is a table of (offset, size) pairs (bit 31 of each offset set), then per entry a
    length-prefixed description (title, author, licence) and a RIFF WAV (OpenTTD's soundloader.cpp).
    """
    import re
    import struct

    cat = x / _SFX.removesuffix(".d")
    out = x / _SFX
    if out.is_dir() or not cat.is_file():
        return
    data = cat.read_bytes()
    for i in range((struct.unpack_from("<I", data, 0)[0] & 0x7FFFFFFF) // 8):
        offset, size = struct.unpack_from("<II", data, 8 * i)
        offset &= 0x7FFFFFFF
        n = data[offset]
        title = data[offset + 1 : offset + 1 + n].rstrip(b"\0").decode("latin-1")
        slug = re.sub(r"[^a-z0-9]+", "-", title.split(".")[0].lower()).strip("-")[:40]
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{i:02d}-{slug}.wav").write_bytes(data[offset + 1 + n : offset + 1 + n + size])


def unpack_freepats(x: Path) -> None:
    """The freepats drum patches used (Gravis .pat, which sox does not read) → NAME.pat.wav beside them.

    GF1PATCH110 layout: 129-byte header, 63-byte instrument, 47-byte layer, then per sample a
    96-byte header (length at +8, rate at +20, modes at +55: bit 0 16-bit, bit 1 unsigned) and its data.
    """
    import struct

    for pattern in TAP_SOURCES["holdout2"]:
        if not pattern.endswith(".pat.wav"):
            continue
        pat = x / pattern.removesuffix(".wav")
        wav = x / pattern
        if wav.is_file() or not pat.is_file():
            continue
        data = pat.read_bytes()
        if data[:8] != b"GF1PATCH":
            raise SystemExit(f"{pat}: not a GF1 patch")
        at = 129 + 63 + 47
        length, rate, modes = struct.unpack_from("<I", data, at + 8)[0], struct.unpack_from("<H", data, at + 20)[0], data[at + 55]
        raw = data[at + 96 : at + 96 + length]
        x16 = np.frombuffer(raw, dtype="<u2" if modes & 2 else "<i2") if modes & 1 else np.frombuffer(raw, dtype=np.uint8 if modes & 2 else np.int8)
        pcm = x16.astype(np.int32)
        if modes & 2:
            pcm -= 32768 if modes & 1 else 128
        if not modes & 1:
            pcm <<= 8
        _write_wav(wav, pcm.astype(np.int16), rate)


def unpack_zips(x: Path) -> None:
    """OpenArena's pak0.pk3 and Trigger Rally's data.zip (zip archives) → their sounds in ARCHIVE.d/."""
    import zipfile

    for folder, prefix in ((_OA, "sound/"), (_TRIGGER, "sounds/")):
        out = x / folder.removesuffix("/" + prefix.rstrip("/"))
        archive = out.with_suffix("")  # pak0.pk3.d → pak0.pk3
        if out.is_dir() or not archive.is_file():
            continue
        with zipfile.ZipFile(archive) as z:
            z.extractall(out, [n for n in z.namelist() if n.startswith(prefix) and n.lower().endswith((".wav", ".ogg"))])


def unpack_warzone(x: Path) -> None:
    """Warzone 2100's base.wz (a zip archive) → its audio/ folder in base.wz.d/."""
    import zipfile

    out = x / _WZ.removesuffix("/audio")
    wz = x / _WZ.removesuffix(".d/audio")
    if out.is_dir() or not wz.is_file():
        return
    with zipfile.ZipFile(wz) as z:
        z.extractall(out, [n for n in z.namelist() if n.startswith("audio/") and n.endswith(".ogg")])


_LOADED: dict[Path, np.ndarray] = {}


def load(path: Path) -> np.ndarray:
    """Any file sox reads → float mono 8 kHz, 300–3400 Hz (the phone's band)."""
    if path not in _LOADED:
        out = subprocess.run(
            ["sox", "-q", str(path), "-t", "f32", "-c", "1", "-r", str(SR), "-", "remix", "-", "rate", str(SR), "sinc", "300-3400"],
            check=True, capture_output=True,
        ).stdout
        _LOADED[path] = np.frombuffer(out, dtype=np.float32).astype(np.float64)
    return _LOADED[path]


def files(cache: Path, patterns: list[str]) -> list[Path]:
    base = cache / "x"
    out: list[Path] = []
    for pattern in patterns:
        out += sorted(base.glob(pattern))
    return out


def city_group(cache: Path, prefixes: list[str]) -> list[Path]:
    """lincity-ng files whose name is a prefix followed by digits (RailTrain1.wav …); names with
    a "/" are file patterns of any package (holdout2)."""
    base = cache / "x" / _CITY
    out = []
    if any("/" in p for p in prefixes):
        return files(cache, prefixes)
    for prefix in prefixes:
        out += sorted(p for p in base.glob(f"{prefix}*.wav") if p.stem[len(prefix):].isdigit() or p.stem[len(prefix):] in ("Low", "Med", "Full", "Empty"))
    return out


def rel(path: Path, cache: Path) -> str:
    return str(path.relative_to(cache / "x"))


# ---------------------------------------------------------------------------- helpers
def rng_for(*parts: object) -> np.random.Generator:
    return synth.rng_for("real", *parts)


def db(x: float) -> float:
    return 10.0 ** (x / 20.0)


def peak_dbfs(x: np.ndarray) -> float:
    return 20 * np.log10(np.abs(x).max() + 1e-12)


def bed_from(sources: list[Path], rng, n: int = N) -> tuple[np.ndarray, list[Path]]:
    """`n` samples of real ambience: files of one group joined with 50 ms cross-fades from random offsets."""
    out = np.zeros(0)
    used = []
    fade = int(0.05 * SR)
    while len(out) < n:
        path = sources[rng.integers(len(sources))]
        x = load(path)
        x = x[int(rng.uniform(0, 0.3) * len(x)) :]
        # Skip a leading fade-in / the clip's quiet start: the ambience at full level.
        if len(out):
            ramp = np.linspace(0, 1, fade)
            head = out[-fade:] * (1 - ramp) + x[:fade] * ramp
            out = np.concatenate((out[:-fade], head, x[fade:]))
        else:
            out = x.copy()
        used.append(path)
    out = out[:n]
    return out / synth.rms(out), used


def tap_hit(path: Path) -> np.ndarray:
    """The recorded hit from its attack, cut where it has decayed 40 dB (at most 250 ms), 10 ms fade."""
    x = load(path)
    env = np.abs(x)
    start = int(np.argmax(env > env.max() * 0.05))
    x = x[max(start - 8, 0) :]
    env = np.abs(x)
    frames = np.sqrt(np.convolve(env**2, np.ones(40) / 40, mode="same"))
    peak = frames.max()
    quiet = np.flatnonzero(frames < peak * db(-40))
    quiet = quiet[quiet > int(0.01 * SR)]
    end = min(int(quiet[0]) if len(quiet) else len(x), int(0.25 * SR))
    y = x[:end].copy()
    fade = min(int(0.01 * SR), len(y))
    y[-fade:] *= np.linspace(1, 0, fade)
    return y / np.abs(y).max()


def g711(x: np.ndarray) -> bytes:
    from callflow.audio.g711 import ulaw_encode

    peak = np.abs(x).max()
    if peak > 0.98:
        x = x * (0.98 / peak)
    return ulaw_encode(np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16))


# ---------------------------------------------------------------------------- clip makers
def make_taps(count: int):
    def make(split, i, cache):
        rng = rng_for(split, f"taps_{count}", i)
        hits = files(cache, TAP_SOURCES[split])
        x = np.zeros(N)
        at = rng.uniform(0.5, 1.5)
        peak = rng.uniform(-35, -6)  # the range of tap peaks
        used, gaps = [], []
        for k in range(count):
            path = hits[rng.integers(len(hits))]
            hit = tap_hit(path) * db(peak + rng.uniform(-3, 3))
            synth.place(x, hit, int(at * SR))
            used.append(path)
            gap = rng.uniform(0.25, 0.8)  # the range of gaps between taps
            gaps.append(gap)
            at += gap
        bed_kind = ["digital silence", "line hiss", "room noise", "breathing"][i % 4]
        real = True
        if bed_kind == "line hiss":
            x = x + synth.line_hiss(rng, N, rng.uniform(-75, -60))
        elif bed_kind == "room noise":
            bed, beds = bed_from(city_group(cache, ROOM_SOURCES[split]), rng)
            level = min(rng.uniform(-60, -45), peak - 15)  # a tap on the handset is loud at the microphone
            x = x + bed * db(level)
            used += beds[:1]
            bed_kind += f" {level:.0f} dBFS"
        elif bed_kind == "breathing":
            breath, rate = synth.breath_train(rng, N)
            level = min(rng.uniform(-55, -35), peak - 12)
            x = x + synth.set_active_level(breath, level) + synth.line_hiss(rng, N, rng.uniform(-75, -65))
            bed_kind += f" (synthetic) {level:.0f} dBFS {rate:.2f}/s"
        what = f"{count} taps peak {peak:.0f} dBFS gaps {'/'.join(f'{g * 1000:.0f}' for g in gaps[:-1]) or '-'} ms over {bed_kind}"
        return x, real, used, what

    return make


def make_background_noise(split, i, cache):
    rng = rng_for(split, "background_noise", i)
    groups = NOISE_SOURCES[split]
    kind = sorted(groups)[i % len(groups)]
    bed, used = bed_from(city_group(cache, groups[kind]), rng)
    level = rng.uniform(-45, -15)
    return bed * db(level), True, used, f"{kind} {level:.0f} dBFS"


def _utterances(split, cache, rng) -> list[Path]:
    spec = SPEECH_SOURCES[split]
    prompts = [p for p in files(cache, spec["prompts"]) if p.stat().st_size > 5000]
    if spec["hash"] is not None:
        prompts = [p for p in prompts if int(hashlib.md5(p.name.encode()).hexdigest(), 16) % 2 == spec["hash"]]
    voices = [p for p in files(cache, spec["voices"]) if p.stat().st_size > 6000]
    return prompts, voices


def utterances_in_a_row(pool, rng, *, first: float, gaps: tuple[float, float]):
    """Utterances drawn from `pool`, each peak-normalised, the first within `first` s, then one after
    another `gaps` s apart until half a second before the clip's end (the draws keep their order, so
    every split rebuilds byte for byte)."""
    x = np.zeros(N)
    at = int(rng.uniform(0.0, first) * SR)
    used = []
    while at < N - SR // 2:
        path = pool[rng.integers(len(pool))]
        u = load(path)
        synth.place(x, u / (np.abs(u).max() + 1e-9), at)
        used.append(path)
        at += len(u) + int(rng.uniform(*gaps) * SR)
    return x, used


def make_speech(split, i, cache):
    rng = rng_for(split, "speech", i)
    prompts, voices = _utterances(split, cache, rng)
    pool = prompts if i % 2 == 0 else voices
    x, used = utterances_in_a_row(pool, rng, first=0.6, gaps=(0.2, 0.8))
    level = rng.uniform(-32, -10)
    x = synth.set_active_level(x, level)
    kinds = {"holdout2": ("recorded letters and syllables", "spoken channel names, French letters"),
             "holdout3": ("prompts (Armelle fr, es-co)", "Warzone 2100 voice actors"),
             "holdout4": ("KTuberling words, 12 languages", "co-drivers, tutorial, unit voices")}.get(split, ("prompts", "voice actors"))
    what = f"{kinds[i % 2]} {level:.0f} dBFS"
    if i % 3 == 1:
        groups = NOISE_SOURCES[split]
        kind = sorted(groups)[rng.integers(len(groups))]
        bed, beds = bed_from(city_group(cache, groups[kind]), rng)
        snr = rng.uniform(8, 20)
        x = x + bed * db(level - snr)
        used += beds[:1]
        what += f" + {kind} snr {snr:.0f}"
    else:
        x = x + synth.line_hiss(rng, N, rng.uniform(-75, -62))
    return x, True, used, what


#: Real breaths (holdout3): LMMS's breath sample and Frozen Bubble's snore, repeated with a pause.
REAL_BREATHS = {"holdout3": [f"{_LMMS}/misc/breath01.ogg", f"{_FB}/snore.ogg"],
                # holdout4: OpenArena's gasp for breath (a real recorded in-breath and out-breath)
                "holdout4": [f"{_OA}/player/sarge/gasp.wav"]}


def real_breath_train(rng, cache: Path, split: str) -> tuple[np.ndarray, Path, float]:
    """N samples of one real breath recording repeated (each time ±2 dB), 0.3–1.2 s apart."""
    path = files(cache, REAL_BREATHS[split])[rng.integers(len(REAL_BREATHS[split]))]
    breath = load(path)
    breath = breath / (np.abs(breath).max() + 1e-9)
    x = np.zeros(N)
    at, n = int(rng.uniform(0, 0.8) * SR), 0
    while at < N:
        synth.place(x, breath * db(rng.uniform(-2, 2)), at)
        at += len(breath) + int(rng.uniform(0.3, 1.2) * SR)
        n += 1
    return x, path, n / CLIP_SECONDS


def make_breathing(split, i, cache):
    rng = rng_for(split, "breathing", i)
    if split in REAL_BREATHS and i % 2 == 0:
        x, path, rate = real_breath_train(rng, cache, split)
        level = rng.uniform(-50, -28)
        x = synth.set_active_level(x, level) + synth.line_hiss(rng, N, rng.uniform(-75, -62))
        return x, True, [path], f"real breath ({path.name}) repeated {rate:.2f}/s {level:.0f} dBFS"
    x, rate = synth.breath_train(rng, N)
    level = rng.uniform(-50, -28)
    x = synth.set_active_level(x, level) + synth.line_hiss(rng, N, rng.uniform(-75, -62))
    what = f"synthetic breathing {rate:.2f}/s {level:.0f} dBFS"
    used = []
    if i % 3 == 2:
        bed, used = bed_from(city_group(cache, ROOM_SOURCES[split]), rng)
        x = x + bed * db(level - 15)
        used = used[:1]
        what += " + real room noise 15 dB under"
    return x, False, used, what


def make_silence(split, i, cache):
    rng = rng_for(split, "silence", i)
    if i % 2:
        bed, used = bed_from(city_group(cache, ROOM_SOURCES[split]), rng)
        level = rng.uniform(-75, -62)
        return bed * db(level), True, used[:1], f"real room noise at {level:.0f} dBFS (far from the phone)"
    level = rng.uniform(-78, -62)
    return synth.line_hiss(rng, N, level), False, [], f"synthetic line hiss {level:.0f} dBFS"


def make_dead_line(split, i, cache):
    rng = rng_for(split, "dead_line", i)
    x = np.zeros(int(DEAD_LINE_SECONDS * SR))  # the classifier calls digital silence dead after 3 s
    what = "digital silence"
    if i % 2:
        cut = int(rng.uniform(0.3, 1.2) * SR)
        x[:cut] = synth.line_hiss(rng, cut, rng.uniform(-60, -45))
        what += " after a burst of hiss"
    return x, False, [], what


FSK = {"fsk": (980.0, 1180.0, 300), "fsk2": (1650.0, 1850.0, 300), "fsk23": (1300.0, 2100.0, 1200), "fsk202": (1200.0, 2200.0, 1200)}


def make_line_tone(split, i, cache):
    rng = rng_for(split, "line_tone", i)
    name, freqs, cadence = TONES[split][i % len(TONES[split])]
    t = np.arange(N) / SR
    used, real = [], False
    if isinstance(freqs, str) and "/" in freqs:  # a recorded tone: looped from a random offset
        path = files(cache, [freqs])[0]
        tone = load(path)
        start = int(rng.uniform(0, len(tone)))
        x = np.tile(tone, N // len(tone) + 2)[start : start + N]
        x = x / (np.sqrt(2) * synth.rms(x[np.abs(x) > 1e-4]))  # the level below is the level while on
        used, real = [path], True
    elif freqs in FSK:  # random bits: V.21 300 baud (channel 1 980/1180 Hz, channel 2 1650/1850 Hz), V.23, Bell 202
        mark, space, baud = FSK[freqs]
        bits = rng.integers(0, 2, int(CLIP_SECONDS * baud) + 1)
        f = np.where(np.repeat(bits, SR // baud + 1)[:N] == 1, mark, space)
        x = np.sin(2 * np.pi * np.cumsum(f) / SR)
    elif freqs == "sit":  # ITU-T E.180 SIT: three rising 274/274/380 ms tones, then ~2 s before the announcement
        seq = np.zeros(N)
        period = int(0.274 * SR) * 2 + int(0.380 * SR) + int(2.0 * SR)
        at = int(rng.uniform(0, 1.5) * SR)
        while at < N:
            for f, dur in ((913.8, 0.274), (1370.6, 0.274), (1776.7, 0.380)):
                n = int(dur * SR)
                seg = np.sin(2 * np.pi * f * np.arange(n) / SR)
                end = min(at + n, N)
                if at < N:
                    seq[at:end] = seg[: end - at]
                at += n
            at += period - int(0.274 * SR) * 2 - int(0.380 * SR)
        x = seq
    elif freqs == "ced_reversals":  # 2100 Hz with a 180° phase reversal every 450 ms (echo cancellers off)
        flips = np.floor((t + rng.uniform(0, 0.45)) / 0.45) % 2
        x = np.sin(2 * np.pi * 2100 * t + np.pi * flips)
    elif freqs == "v22":  # V.22 DPSK, answering modem: 2400 Hz carrier, 600 baud, random dibits
        symbols = rng.integers(0, 4, int(CLIP_SECONDS * 600) + 1)
        phase = np.cumsum(symbols * np.pi / 2)
        x = np.sin(2 * np.pi * 2400 * t + np.repeat(phase, SR // 600 + 1)[:N])
    elif freqs == "ansam":  # V.8 ANSam: 2100 Hz, amplitude-modulated 20 % at 15 Hz
        x = np.sin(2 * np.pi * 2100 * t) * (1 + 0.2 * np.sin(2 * np.pi * 15 * t)) / 1.2
    else:
        phase = rng.uniform(0, 2 * np.pi, len(freqs))
        x = sum(np.sin(2 * np.pi * f * t + p) for f, p in zip(freqs, phase)) / len(freqs)
    if cadence:
        period = sum(on + off for on, off in cadence)
        gate = np.zeros(N, dtype=bool)
        pos = (t + rng.uniform(0, period)) % period
        start = 0.0
        for on, off in cadence:
            gate |= (pos >= start) & (pos < start + on)
            start += on + off
        x = x * gate
    level = rng.uniform(-30, -10)
    x = x * db(level) * np.sqrt(2) + synth.line_hiss(rng, N, rng.uniform(-72, -60))
    return x, real, used, f"{'' if real else 'synthetic '}{name} {level:.0f} dBFS"


#: Distress and raised voice (issue 12, item 4): a measurement set, not a classifier split (nothing is
#: tuned on it). Real recorded voices: Wesnoth's and Scorched 3D's pain cries and screams (distress),
#: MegaGlest's soldiers shouting their attack cries (raised voice) and the same actors answering
#: calmly when selected (calm voice). Only files whose frames are mostly voiced (≥ 30 %: a voice, not
#: a sword) are used. No real crying or sobbing was found in Debian's game and sound packages.
_GLEST_SOUNDS = f"{_GLEST}/techs/megapack/commondata/sounds"
_WESNOTH_SOUNDS = f"{_WESNOTH}/data/core/sounds"
DISTRESS_SOURCES = {
    "distress": [f"{_WESNOTH_SOUNDS}/human-{k}.ogg" for k in (
        "die-1", "die-2", "die-3", "female-die-1", "female-die-2", "female-die-3", "old-die-1", "old-die-2", "old-die-3",
        "hit-1", "hit-2", "hit-3", "hit-4", "hit-5", "female-hit-1", "female-hit-2", "female-hit-3", "old-hit-3", "old-hit-4")]
    + [f"{_S3D}/apoc/data/wav/misc/scream{k}.wav" for k in (1, 2, 3, 4)],
    "raised_voice": [f"{_GLEST_SOUNDS}/swordman_attack{k}.wav" for k in (1, 2, 3, 4)]
    + [f"{_GLEST_SOUNDS}/guard_attack{k}.wav" for k in (3, 5, 6, 9, 10, 11, 12, 13, 14)],
    "calm_voice": [f"{_GLEST_SOUNDS}/swordman_select{k}.wav" for k in (1, 2, 3, 4, 5, 6, 7)]
    + [f"{_GLEST_SOUNDS}/guard_select{k}.wav" for k in (1,)],
}
DISTRESS_COUNT = 12


def make_voice_clip(label: str, i: int, cache: Path):
    """Utterances of one label 0.3–1.2 s apart over line hiss, all labels at the same active levels
    (−30 to −10 dBFS): what tells a shout from a calm answer must be in the voice, not the level."""
    rng = rng_for("distress", label, i)
    pool = files(cache, DISTRESS_SOURCES[label])
    x, used = utterances_in_a_row(pool, rng, first=0.8, gaps=(0.3, 1.2))
    level = rng.uniform(-30, -10)
    x = synth.set_active_level(x, level) + synth.line_hiss(rng, N, rng.uniform(-75, -62))
    return x, True, used, f"{label.replace('_', ' ')} {level:.0f} dBFS"


def build_distress(out: Path, cache: Path) -> None:
    for label in DISTRESS_SOURCES:
        folder = out / "distress" / label
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        lines = []
        for i in range(DISTRESS_COUNT):
            x, real, used, what = make_voice_clip(label, i, cache)
            name = f"{label}_{i:03d}.ulaw"
            (folder / name).write_bytes(g711(x))
            lines.append(f"{name}\t{'real' if real else 'synthetic'}\t{what}\t{','.join(sorted({rel(p, cache) for p in used}))}")
        (folder / "MANIFEST.tsv").write_text("name\tkind\twhat\tsources\n" + "\n".join(lines) + "\n")
        print(f"distress/{label}: {DISTRESS_COUNT} clips", file=sys.stderr)


MAKERS = {
    "taps_1": make_taps(1), "taps_2": make_taps(2), "taps_3": make_taps(3),
    "background_noise": make_background_noise, "speech": make_speech, "breathing": make_breathing,
    "silence": make_silence, "dead_line": make_dead_line, "line_tone": make_line_tone,
}


def build(out: Path, cache: Path, splits: list[str]) -> None:
    versions = fetch_packages(cache)
    for split in splits:
        for label, count in COUNTS.items():
            folder = out / split / label
            if folder.exists():
                shutil.rmtree(folder)
            folder.mkdir(parents=True)
            lines = []
            for i in range(count):
                x, real, used, what = MAKERS[label](split, i, cache)
                name = f"{label}_{split}_{i:03d}.ulaw"
                (folder / name).write_bytes(g711(x))
                sources = ",".join(sorted({rel(p, cache) for p in used})) or "-"
                lines.append(f"{name}\t{'real' if real else 'synthetic'}\t{what}\t{sources}")
            (folder / "MANIFEST.tsv").write_text("name\tkind\twhat\tsources\n" + "\n".join(lines) + "\n")
            print(f"{split}/{label}: {count} clips", file=sys.stderr)
    (out / "PACKAGES.tsv").write_text("".join(f"{p}\t{v}\n" for p, v in sorted(versions.items())))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "tests/audio/real")
    parser.add_argument("--cache", type=Path, default=Path("/var/tmp/callflow-real-audio"))
    parser.add_argument("--splits", nargs="+", default=list(TAP_SOURCES), choices=list(TAP_SOURCES))
    parser.add_argument("--distress", action="store_true", help="also the distress / raised-voice measurement set (OUT/distress)")
    args = parser.parse_args(argv)
    for tool in ("sox", "apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is needed")
    build(args.out, args.cache, args.splits)
    if args.distress:
        build_distress(args.out, args.cache)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
