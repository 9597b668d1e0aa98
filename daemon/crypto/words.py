"""The word list for safety words and key fingerprints (:mod:`daemon.crypto.identity`).

:data:`WORDS` has exactly 256 entries, so one byte of a digest picks one word. The words are short
(3 to 7 letters), lower-case ASCII, concrete and easy to say aloud; no two differ by a single letter
(one substitution, insertion or deletion), so a misheard or mistyped word does not land on another.
The list is part of the protocol's user-visible output: never reorder or edit it, since that would
change the words every existing pair of devices displays.
"""

from __future__ import annotations

__all__ = ["WORDS"]

WORDS: tuple[str, ...] = (
    "acorn", "alarm", "amber", "anchor", "anvil", "apple", "arrow", "atlas", "attic", "autumn", "badge",
    "ballet", "bamboo", "banana", "banjo", "barrel", "beach", "beaver", "berry", "bicycle", "bishop",
    "blanket", "blossom", "border", "bottle", "branch", "bread", "breeze", "brick", "bridge", "broom",
    "bubble", "bucket", "buffalo", "button", "cabbage", "cabin", "cactus", "camera", "candy", "canyon",
    "carpet", "castle", "cedar", "chess", "circle", "cliff", "cloud", "clover", "cocoa", "coffee",
    "comet", "compass", "cookie", "copper", "coral", "cotton", "cowboy", "cricket", "crimson",
    "crystal", "daisy", "dance", "dentist", "desert", "diamond", "dinner", "doctor", "dolphin",
    "dragon", "eagle", "earth", "echo", "elbow", "emerald", "engine", "falcon", "feather", "fence",
    "fern", "fiddle", "fig", "flame", "forest", "fossil", "frog", "galaxy", "garden", "garlic", "ghost",
    "giant", "granite", "grape", "guitar", "hammer", "harbor", "harp", "hawk", "hazel", "helmet",
    "hippo", "horse", "igloo", "insect", "iron", "island", "ivory", "jacket", "jaguar", "jelly",
    "jewel", "journal", "jungle", "ketchup", "kettle", "kitchen", "kiwi", "ladder", "lagoon", "lantern",
    "laptop", "lava", "lemon", "letter", "lily", "lobster", "magnet", "mailbox", "mango", "marble",
    "meadow", "mermaid", "meteor", "mirror", "monkey", "muffin", "museum", "mustard", "napkin",
    "needle", "nickel", "oasis", "ocean", "olive", "onion", "opal", "orange", "orbit", "orchid",
    "otter", "owl", "paddle", "pajamas", "palace", "pasta", "peacock", "peanut", "pebble", "pencil",
    "penguin", "piano", "pickle", "pigeon", "pillow", "pirate", "plaza", "plum", "pony", "popcorn",
    "potato", "pumpkin", "puppet", "puzzle", "quilt", "rabbit", "radar", "radish", "rainbow", "raisin",
    "raven", "rhino", "ribbon", "robot", "rodeo", "safari", "sailor", "salmon", "salsa", "sandal",
    "saucer", "scarf", "shadow", "shell", "silver", "skate", "sketch", "sleigh", "sloth", "snail",
    "sock", "spider", "spiral", "sponge", "spoon", "sprout", "squash", "squid", "statue", "stereo",
    "sugar", "summit", "sunset", "swan", "table", "taco", "tadpole", "teapot", "tennis", "thunder",
    "tiger", "toast", "tofu", "torch", "tornado", "tractor", "trophy", "trout", "trumpet", "tulip",
    "tunnel", "turtle", "unicorn", "valley", "vanilla", "velvet", "viking", "violin", "volcano",
    "voyage", "vulture", "waffle", "wagon", "walnut", "weasel", "whale", "wheat", "whistle", "window",
    "winter", "wizard", "wolf", "wombat", "yarn", "yeti", "zebra", "zipper",
)
