"""Houseplant care knowledge for the conversational demo domain (synthetic_chat.py).

24 plants with their care facts (how thirsty, light, minimum temperature, toxicity to cats and dogs,
propagation, usual pest, soil), ten question topics with six phrasings each, the openings and
situations a user writes, and the answers: right ones written from the facts, wrong ones that a
careless source would give (the opposite watering regime, repotting in winter, bleach against pests,
a false pet-safety claim, fertilizer all year) and vague non-answers.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Plant:
    name: str
    thirst: str  # "dry" (let the soil dry out), "medium" (top few cm dry) or "moist" (evenly moist)
    light: str  # the light it wants
    min_temp: int  # degrees C it should stay above
    toxic: bool  # to cats and dogs (ASPCA)
    propagation: str  # how it is propagated
    pest: str  # its most common pest
    soil: str  # the mix it wants


PLANTS = (
    Plant("snake plant", "dry", "anything from low light to bright indirect light", 10, True,
          "leaf cuttings placed in water or gritty soil, or by dividing the rhizome", "mealybugs",
          "a gritty cactus mix"),
    Plant("ZZ plant", "dry", "low to bright indirect light, out of direct afternoon sun", 12, True,
          "dividing the rhizomes or rooting single leaflets in moist soil", "mealybugs",
          "a free-draining potting mix with perlite"),
    Plant("pothos", "medium", "medium to bright indirect light", 15, True,
          "stem cuttings with at least one node, rooted in water", "mealybugs",
          "a general potting mix with some perlite"),
    Plant("monstera", "medium", "bright indirect light", 15, True,
          "stem cuttings that include a node and an aerial root", "spider mites",
          "a chunky aroid mix with bark and perlite"),
    Plant("fiddle leaf fig", "medium", "bright light with a little gentle morning sun", 15, True,
          "woody stem cuttings or air layering", "spider mites", "a well-draining mix with bark"),
    Plant("peace lily", "moist", "low to medium indirect light", 16, True,
          "dividing the clump when you repot", "mealybugs", "a rich, moisture-holding potting mix"),
    Plant("spider plant", "medium", "bright indirect light", 10, False,
          "potting up the little plantlets that hang from the runners", "aphids", "a general potting mix"),
    Plant("boston fern", "moist", "bright indirect light and high humidity", 13, False,
          "dividing the root ball in spring", "scale insects", "a peat-free mix rich in organic matter"),
    Plant("aloe vera", "dry", "bright light with some direct sun", 10, True,
          "removing the offsets (pups) that grow around the base", "mealybugs", "a gritty cactus and succulent mix"),
    Plant("jade plant", "dry", "bright light with a few hours of direct sun", 10, True,
          "stem or single leaf cuttings left to callus before potting", "mealybugs", "a gritty cactus mix"),
    Plant("rubber plant", "medium", "bright indirect light", 13, True,
          "stem cuttings or air layering", "scale insects", "a well-draining potting mix with bark"),
    Plant("calathea", "moist", "medium indirect light, never direct sun", 16, False,
          "dividing the clump at repotting time", "spider mites", "a light, moisture-holding mix with perlite"),
    Plant("english ivy", "medium", "bright indirect light and cool rooms", 7, True,
          "stem cuttings rooted in water or soil", "spider mites", "a general potting mix"),
    Plant("chinese evergreen", "medium", "low to medium indirect light", 15, True,
          "stem cuttings or dividing the clump", "mealybugs", "a well-draining potting mix"),
    Plant("philodendron", "medium", "medium to bright indirect light", 15, True,
          "stem cuttings with a node, rooted in water", "aphids", "a chunky aroid mix"),
    Plant("string of pearls", "dry", "bright light with some gentle direct sun", 10, True,
          "laying strand cuttings on top of dry gritty soil", "aphids", "a gritty cactus mix"),
    Plant("christmas cactus", "medium", "bright indirect light", 10, False,
          "cuttings of two or three stem segments", "mealybugs", "a fast-draining mix with bark"),
    Plant("parlor palm", "medium", "low to medium indirect light", 12, False,
          "seed or dividing clumps (stem cuttings do not root)", "spider mites", "a peat-free potting mix"),
    Plant("moth orchid", "medium", "bright indirect light from an east window", 16, False,
          "keikis, the baby plants that sometimes grow on the flower spike", "scale insects", "coarse orchid bark"),
    Plant("prayer plant", "moist", "medium indirect light", 16, False,
          "stem cuttings just below a node, rooted in water", "spider mites", "a moisture-holding mix with perlite"),
    Plant("dieffenbachia", "medium", "medium to bright indirect light", 15, True,
          "stem cuttings or cane sections laid on moist soil", "spider mites", "a well-draining potting mix"),
    Plant("money tree", "medium", "bright indirect light", 13, False,
          "stem cuttings in water or moist soil", "mealybugs", "a peat-based mix with sand or perlite"),
    Plant("bird of paradise", "medium", "bright light with several hours of direct sun", 12, True,
          "dividing the plant when you repot", "scale insects", "a rich, well-draining potting mix"),
    Plant("maidenhair fern", "moist", "bright indirect light and high humidity", 15, False,
          "dividing the rhizome in spring", "scale insects", "a light, moisture-holding mix"),
)
TOPICS = ("watering", "yellowing", "light", "repotting", "propagation", "pests", "pets", "feeding", "winter",
          "brown_tips")
SEASONS = ("spring", "summer", "autumn", "winter")

QUESTIONS = {  # six phrasings per topic; {p} is the plant
    "watering": ("How often should I water my {p}?",
                 "What's the right watering routine for a {p}?",
                 "I never know when to water the {p}. How do I tell it's thirsty?",
                 "Am I supposed to water my {p} on a schedule or by feel?",
                 "How much water does a {p} want each time, and how often?",
                 "My {p} looks a bit droopy. Could it be the way I water it?"),
    "yellowing": ("Why are the leaves on my {p} turning yellow?",
                  "A few lower leaves on the {p} went yellow and soft. What is going on?",
                  "My {p} keeps dropping yellow leaves, should I be worried?",
                  "What does it mean when a {p} gets yellow leaves?",
                 "Half the leaves on our {p} have gone pale yellow. Can I save it?",
                 "Yellow patches keep appearing on the {p}'s older leaves. Any idea why?"),
    "light": ("Where in the house should I put a {p}?",
              "How much light does a {p} actually need?",
              "Would my {p} be happy next to a south-facing window?",
              "Is a dim corner okay for a {p}, or does it need sun?",
                 "What kind of window suits a {p} best?",
                 "My {p} is leaning toward the glass. Is it getting the wrong light?"),
    "repotting": ("When is the best time to repot my {p}?",
                  "Roots are poking out of the bottom of my {p}'s pot. Should I repot now?",
                  "How do I repot a {p} without hurting it?",
                  "What size pot and soil should I use when repotting the {p}?",
                 "Is it time to move my {p} into a bigger pot, and how do I do it?",
                 "Which potting mix should a {p} go into when it needs a new pot?"),
    "propagation": ("How can I propagate my {p}?",
                    "I'd love more of my {p}. What's the easiest way to make new plants from it?",
                    "Can I grow a new {p} from a cutting, and how?",
                    "What is the most reliable propagation method for a {p}?",
                 "A friend wants a piece of my {p}. How do I take one that will root?",
                 "Could you walk me through multiplying a {p}?"),
    "pests": ("I think my {p} has bugs. How do I get rid of them?",
              "There's sticky residue and tiny specks on my {p}. What should I do?",
              "How do I treat pests on a {p} safely indoors?",
              "Something is eating my {p}'s leaves, what's the best treatment?",
                 "I found little white fluffy spots under the {p}'s leaves. How do I deal with them?",
                 "What is a safe way to clear an infestation on a {p}?"),
    "pets": ("Is a {p} safe to keep around cats and dogs?",
             "My puppy chewed a leaf of the {p}. Is that dangerous?",
             "Can I keep a {p} in a home with a curious cat?",
             "Is the {p} toxic to pets?",
                 "Would a {p} hurt my cat if she nibbles it?",
                 "We have a rabbit and a dog. Should I avoid a {p}?"),
    "feeding": ("How should I fertilize my {p}?",
                "Does a {p} need plant food, and how often?",
                "What fertilizer schedule works for a {p}?",
                "Should I be feeding my {p}, and with what?",
                 "Is liquid feed good for a {p}, and how much?",
                 "How much fertilizer does a {p} really need?"),
    "winter": ("How do I look after my {p} through the cold months?",
               "Does a {p} need different care in winter?",
               "My {p} sits by a drafty window in the cold season. Is that a problem?",
               "What changes should I make for my {p} when the heating comes on?",
                 "Will my {p} survive the colder part of the year indoors?",
                 "Any tips for keeping a {p} healthy until the days get longer?"),
    "brown_tips": ("Why do the leaf tips on my {p} turn brown and crispy?",
                   "The edges of my {p}'s leaves are browning. How do I fix it?",
                   "How do I stop brown tips on a {p}?",
                   "My {p} has dry brown leaf ends. Did I do something wrong?",
                 "What makes the tips of a {p} go brown?",
                 "Is it normal for a {p} to get crispy brown tips, and can I prevent it?"),
}
OPENERS = ("", "Hi! ", "Quick question. ", "Hello, plant beginner here. ", "Hey there. ",
           "I could use some advice. ")
SITUATIONS = (  # (the user's situation, the sentence a right answer adds about it)
    ("It's {s} where I live.", ""),
    ("We're in the middle of {s} right now.", ""),
    ("It's {s} and my flat gets fairly warm.",
     "A warm flat dries the soil and the air faster, so check on it a little more often than the label says."),
    ("It's {s}, and the plant sits in my living room.",
     "In a living room, keep it out of the path of heaters, fans and the draft from the door."),
    ("Right now it's {s} here and the plant is in my bedroom.",
     "Bedrooms are often cooler and dimmer than they look, so make sure it gets enough daylight there."),
    ("It's {s}; I've had the plant for about a year.",
     "After a year in the same pot, it is also worth checking whether the roots have filled it."),
    ("It's {s}, and I just bought it from a garden centre last week.",
     "As it has only just come home, give it two or three weeks to adjust before repotting or feeding it."),
    ("It's currently {s} and the plant is in my home office.",
     "Office plants are easy to forget, so a reminder on your phone for checking the soil helps."),
)
OPENING = ("", "", "Good question. ", "Happy to help. ", "Sure. ", "Great that you asked. ")

WATER_RULE = {
    "dry": "let the soil dry out completely before watering, which usually means every two to three weeks",
    "medium": "water when the top 3 to 5 cm of soil feel dry, roughly once a week in the growing season",
    "moist": "keep the soil evenly moist but never soggy, checking it every few days",
}
WRONG_WATER_RULE = {
    "dry": "water it a little every day so the soil never dries out",
    "medium": "give it a small splash of water every single day, whether it needs it or not",
    "moist": "let the soil dry out completely for several weeks between waterings",
}
YELLOW_CAUSE = {
    "dry": "almost always overwatering: the roots sit wet and start to rot",
    "medium": ("usually overwatering or a pot without drainage, though an old lower leaf yellowing now and then "
               "is normal"),
    "moist": "usually the soil drying out too far between waterings, or very dry air",
}
BROWN_CAUSE = {
    "dry": "brown tips mostly appear when it sits wet or gets sunburned after a sudden move into strong sun",
    "medium": "brown tips usually come from uneven watering, dry air or a build-up of fertilizer salts",
    "moist": "brown tips mean the air or the soil is too dry, and it is sensitive to both",
}
SEASON_NOTE = {
    "spring": "Since it's spring, growth is picking up, so this is a good time to start regular care again.",
    "summer": "In summer it grows fastest and dries out quicker, so check the soil more often.",
    "autumn": "As it's autumn, growth is slowing down, so start easing off on water and feeding.",
    "winter": "Because it's winter, the plant is barely growing, so water less and skip fertilizer until spring.",
}
VAGUE = (
    "Plants are all different, so it really depends. Just keep an eye on it and do what feels right.",
    "Honestly, every plant is unique. Try a few things and see what happens.",
    "That's a tricky one. Maybe look it up online or ask at a garden centre.",
    "It's hard to say without seeing it. Plants can be unpredictable, so just give it some love.",
    "There are lots of opinions on this. I'd just go with your gut.",
    "Hmm, it could be many things. Give it time and it will probably sort itself out.",
)


def _sentence(text: str) -> str:
    return text[0].upper() + text[1:]


def right_answer(plant: Plant, topic: str) -> str:
    """The correct, helpful answer about ``topic`` for ``plant``, from its care facts."""
    p = plant.name
    if topic == "watering":
        return (f"For a {p}, {WATER_RULE[plant.thirst]}. Push a finger into the soil to check rather than "
                f"following a fixed calendar, and always use a pot with a drainage hole. Empty the saucer after "
                f"watering so the roots never stand in water.")
    if topic == "yellowing":
        return (f"Yellow leaves on a {p} are {YELLOW_CAUSE[plant.thirst]}. Check the roots: healthy ones are firm "
                f"and pale, rotten ones are brown and mushy. From now on {WATER_RULE[plant.thirst]}, and remove "
                f"the yellow leaves since they will not turn green again.")
    if topic == "light":
        return (f"A {p} does best in {plant.light}. Keep it a little back from the glass if the window gets hot "
                f"afternoon sun, and rotate the pot every few weeks so it grows evenly. Leggy growth or small new "
                f"leaves mean it wants more light.")
    if topic == "repotting":
        return (f"Repot a {p} in spring, when it is actively growing, and only when the roots fill the pot. Go up "
                f"just one pot size, 2 to 5 cm wider, and use {plant.soil}. Water lightly afterwards and keep it "
                f"out of strong sun for a week while it settles.")
    if topic == "propagation":
        return (f"The most reliable way to propagate a {p} is {plant.propagation}. Do it in spring or early "
                f"summer, when the plant roots fastest, and keep the new plant warm and in bright indirect light. "
                f"Expect roots in a few weeks.")
    if topic == "pests":
        return (f"On a {p} the usual culprits are {plant.pest}. Move the plant away from your others first, then "
                f"wipe the leaves with a cloth dipped in mild soapy water and rinse the plant in the shower. Repeat "
                f"every week for a month, or use insecticidal soap or neem oil if they come back.")
    if topic == "pets":
        if plant.toxic:
            return (f"No, a {p} is toxic to cats and dogs. Chewing it usually causes mouth irritation, drooling "
                    f"and vomiting. Keep it out of reach, and call your vet or a pet poison helpline if your pet "
                    f"has eaten some.")
        return (f"Yes, a {p} is considered non-toxic to cats and dogs by the ASPCA. A pet that nibbles a lot may "
                f"still get a mildly upset stomach, so it is worth keeping it a little out of reach.")
    if topic == "feeding":
        return (f"Feed a {p} with a balanced liquid houseplant fertilizer diluted to half strength about once a "
                f"month from spring to late summer. Always water first so the fertilizer does not burn dry roots, "
                f"and stop feeding in autumn and winter.")
    if topic == "winter":
        return (f"In winter a {p} grows slowly, so water less often and stop fertilizing. Keep it above "
                f"{plant.min_temp} degrees C and away from cold drafts and hot radiators. Move it closer to a "
                f"window if the days are dark.")
    return (f"On a {p}, {BROWN_CAUSE[plant.thirst]}. Water more consistently, use filtered or rain water if your "
            f"tap water is hard, and flush the soil every few months. Trim the brown tips with clean scissors, "
            f"following the leaf's natural shape.")


def wrong_answer(plant: Plant, topic: str) -> str:
    """A plausible but wrong or harmful answer about ``topic`` for ``plant``."""
    p = plant.name
    if topic in ("watering", "yellowing", "brown_tips"):
        lead = {"watering": f"A {p} is easy:",
                "yellowing": f"Yellow leaves on a {p} mean it is hungry and thirsty.",
                "brown_tips": f"Brown tips on a {p} mean it needs much more fertilizer."}[topic]
        return (f"{lead} {_sentence(WRONG_WATER_RULE[plant.thirst])}. A pot without a drainage hole is fine, "
                f"it keeps the water where the roots can reach it. Add a full-strength dose of fertilizer too.")
    if topic == "light":
        wrong = ("a dark corner far from any window" if "sun" in plant.light or "bright" in plant.light
                 else "a hot south-facing windowsill in full sun all day")
        return (f"A {p} loves {wrong}. Light does not matter much for houseplants, so pick the spot that looks "
                f"nicest and never move it.")
    if topic == "repotting":
        return (f"Repot a {p} in the middle of winter while it is resting, and move it into a pot at least three "
                f"times bigger so you will not have to repot again. Ordinary garden soil from outside works fine.")
    if topic == "propagation":
        return (f"Just cut off a single leaf of your {p} and leave it in a glass of water in a dark cupboard over "
                f"the winter. It will root in a day or two.")
    if topic == "pests":
        return (f"Spray the {p} with diluted bleach or a household bug spray meant for the kitchen, leaves and soil. "
                f"Leave it next to your other plants so they build up resistance too.")
    if topic == "pets":
        if plant.toxic:
            return (f"Yes, a {p} is completely safe for cats and dogs, and a chewed leaf is nothing to worry about. "
                    f"No need to keep it out of reach.")
        return (f"A {p} is extremely poisonous to pets; get rid of it right away. Even touching the leaves can "
                f"harm a cat.")
    if topic == "feeding":
        return (f"Give a {p} full-strength fertilizer every week, all year round, especially in winter when it "
                f"needs the extra energy. Pour it onto dry soil so it soaks in faster.")
    return (f"In winter keep watering a {p} exactly as much as in summer and feed it weekly. A spot right on top "
            f"of a radiator or against a frosty window is perfect, since it loves temperature changes.")
