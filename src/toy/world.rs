//! The fixed toy world: lexicons, a knowledge base of facts, three synthetic
//! languages and the word pools the task generators draw from.
//!
//! Everything is derived from one seed, so a world (and therefore its
//! tokenizer vocabulary) is reproducible. Invented words (entity names, city
//! names, foreign words, label words) come from per-inventory syllable
//! generators; English-like words are fixed lists below.

use std::collections::{BTreeMap, BTreeSet};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};

/// The seed of the canonical world used by the toy experiments.
pub const DEFAULT_WORLD_SEED: u64 = 20_230_000;

const NUM_ENTITIES: usize = 40;
const NUM_CITIES: usize = 10;
const NUM_LABEL_WORDS: usize = 24;

/// One relation of the knowledge base with every phrasing the tasks use.
/// `{e}` stands for the entity, `{v}` for the value.
#[derive(Debug, Clone)]
pub struct Relation {
    /// Short name, also the noun used in "the {noun} of {e} is {v}".
    pub noun: &'static str,
    /// Declarative sentence, used in premises and articles.
    pub statement: &'static str,
    /// Negated declarative sentence, used in hypotheses.
    pub negation: &'static str,
    /// TriviaQA-style questions ("what is the X of E?").
    pub trivia_questions: &'static [&'static str],
    /// WebQuestions-style questions (verb phrasing).
    pub web_questions: &'static [&'static str],
    /// Every value this relation can take.
    pub values: Vec<String>,
}

/// A knowledge-base fact: indices into `World::entities`, `World::relations`
/// and that relation's `values`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fact {
    pub entity: usize,
    pub relation: usize,
    pub value: usize,
}

/// How a synthetic language orders the words of a sentence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WordOrder {
    /// Subject verb object, adjective after the noun (the "French" role).
    SvoAdjectiveAfter,
    /// Subject object prepositional-phrase verb (the "German" role).
    VerbFinal,
    /// Verb subject object, determiner and adjective after the noun
    /// (the "Romanian" role; its articles are enclitic).
    VsoDeterminerAfter,
}

/// A synthetic language: a word-for-word lexicon plus a word order rule.
#[derive(Debug, Clone)]
pub struct Language {
    /// English name used in the prompt ("French").
    pub name: &'static str,
    pub order: WordOrder,
    /// English grammar word -> foreign word.
    pub lexicon: BTreeMap<String, String>,
}

/// The English words of the translation grammar, by category.
#[derive(Debug, Clone)]
pub struct Grammar {
    pub determiners: Vec<String>,
    pub adjectives: Vec<String>,
    pub nouns: Vec<String>,
    pub verbs: Vec<String>,
    pub prepositions: Vec<String>,
}

/// A word with two senses, each signalled by its own context (cue) words.
#[derive(Debug, Clone)]
pub struct AmbiguousWord {
    pub word: &'static str,
    pub senses: [[&'static str; 3]; 2],
}

/// The whole toy world.
#[derive(Debug, Clone)]
pub struct World {
    pub seed: u64,
    pub entities: Vec<String>,
    pub relations: Vec<Relation>,
    /// One fact per (entity, relation): 200 facts for 40 entities.
    pub facts: Vec<Fact>,
    /// Alternative correct answers for some values ("physician" for "doctor").
    pub aliases: BTreeMap<String, String>,
    pub grammar: Grammar,
    /// French, German, Romanian roles, in that order.
    pub languages: Vec<Language>,
    pub ambiguous_words: Vec<AmbiguousWord>,
    /// Neutral verbs and prepositions used to build WiC sentences.
    pub wic_verbs: Vec<&'static str>,
    pub wic_prepositions: Vec<&'static str>,
    /// Invented words that carry no meaning: the fresh rule's markers.
    pub label_words: Vec<String>,
}

const COLORS: &[&str] = &["red", "blue", "yellow", "black", "white", "purple", "orange", "gray"];
const FOODS: &[&str] = &["bread", "rice", "soup", "cake", "apples", "noodles", "beans", "pie"];
const PETS: &[&str] = &["dog", "cat", "parrot", "rabbit", "hamster", "turtle", "goat", "lizard"];
const JOBS: &[&str] = &[
    "doctor", "teacher", "farmer", "baker", "pilot", "singer", "sailor", "judge",
];
const ALIASES: &[(&str, &str)] = &[
    ("gray", "grey"),
    ("doctor", "physician"),
    ("sailor", "seaman"),
    ("rabbit", "bunny"),
    ("cat", "kitty"),
    ("noodles", "pasta"),
];

const DETERMINERS: &[&str] = &["the", "a", "this"];
const ADJECTIVES: &[&str] = &[
    "big", "small", "old", "young", "happy", "tall", "quiet", "bright", "green", "heavy",
];
const NOUNS: &[&str] = &[
    "dog", "cat", "man", "woman", "child", "bird", "horse", "teacher", "farmer", "king", "house", "tree", "river",
    "boat", "book", "garden",
];
const VERBS: &[&str] = &[
    "sees", "likes", "finds", "follows", "helps", "carries", "watches", "hears", "paints", "visits",
];
const PREPOSITIONS: &[&str] = &["near", "behind", "under", "with", "inside"];

const AMBIGUOUS: &[(&str, [[&str; 3]; 2])] = &[
    ("bank", [["shore", "fish", "water"], ["money", "coin", "loan"]]),
    ("bat", [["cave", "wing", "night"], ["ball", "game", "swing"]]),
    ("bark", [["trunk", "wood", "branch"], ["growl", "noise", "puppy"]]),
    ("spring", [["season", "flower", "rain"], ["coil", "metal", "bounce"]]),
    ("pitch", [["song", "tune", "note"], ["field", "grass", "match"]]),
    (
        "letter",
        [["mail", "stamp", "envelope"], ["alphabet", "vowel", "spelling"]],
    ),
    ("plant", [["leaf", "seed", "soil"], ["factory", "worker", "machine"]]),
    ("ring", [["finger", "gold", "jewel"], ["phone", "call", "bell"]]),
    ("key", [["door", "lock", "chain"], ["piano", "music", "melody"]]),
    ("crane", [["nest", "pond", "feather"], ["lift", "building", "steel"]]),
    ("mouse", [["cheese", "hole", "tail"], ["computer", "screen", "click"]]),
    ("fan", [["breeze", "cool", "blade"], ["team", "cheer", "stadium"]]),
];
const WIC_VERBS: &[&str] = &["saw", "found", "liked", "watched", "noticed"];
const WIC_PREPOSITIONS: &[&str] = &["near", "with", "by"];

/// A syllable inventory for invented words: onset, nucleus, optional coda,
/// and an ending appended to the last syllable.
struct Inventory {
    onsets: &'static [&'static str],
    nuclei: &'static [&'static str],
    codas: &'static [&'static str],
    endings: &'static [&'static str],
    max_syllables: usize,
}

const ENTITY_SOUNDS: Inventory = Inventory {
    onsets: &["z", "k", "x", "v", "m", "b", "g", "r", "fl", "dr"],
    nuclei: &["o", "i", "a", "u"],
    codas: &["rp", "nk", "x", "m", "b", "l", "z", ""],
    endings: &[""],
    max_syllables: 2,
};
const CITY_SOUNDS: Inventory = Inventory {
    onsets: &["v", "l", "n", "d", "t", "s", "h"],
    nuclei: &["e", "a", "i", "o"],
    codas: &["", "r", "l", "n"],
    endings: &["a", "on", "ia", "eth"],
    max_syllables: 2,
};
const FRENCH_SOUNDS: Inventory = Inventory {
    onsets: &["b", "d", "f", "l", "m", "p", "r", "s", "t", "v", "ch"],
    nuclei: &["a", "e", "i", "o", "ou", "eu"],
    codas: &["", "r", "n"],
    endings: &["eau", "ette", "on", "ie", "ais", ""],
    max_syllables: 2,
};
const GERMAN_SOUNDS: Inventory = Inventory {
    onsets: &["k", "g", "h", "sch", "st", "w", "z", "br", "pf"],
    nuclei: &["a", "e", "i", "o", "u", "ei", "au"],
    codas: &["ng", "nt", "ch", "k", "rt", ""],
    endings: &["en", "er", "ung", ""],
    max_syllables: 2,
};
const ROMANIAN_SOUNDS: Inventory = Inventory {
    onsets: &["c", "d", "m", "p", "r", "s", "t", "v", "j"],
    nuclei: &["a", "e", "i", "o", "u", "ea"],
    codas: &["", "r", "s"],
    endings: &["ul", "escu", "ea", "ia", "ata"],
    max_syllables: 2,
};
const LABEL_SOUNDS: Inventory = Inventory {
    onsets: &["q", "j", "y", "w", "qu", "sn", "gl"],
    nuclei: &["i", "e", "o", "y"],
    codas: &["b", "x", "p", "g", "ff"],
    endings: &[""],
    max_syllables: 1,
};

fn to_strings(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

/// Picks one item uniformly; an error (not a panic) on an empty slice.
pub(crate) fn pick<'a, T, R: Rng + ?Sized>(rng: &mut R, items: &'a [T]) -> Result<&'a T> {
    if items.is_empty() {
        return Err(Error::msg("toy world: tried to pick from an empty word list"));
    }
    Ok(&items[rng.random_range(0..items.len())])
}

/// Draws `n` new invented words from an inventory, none of them in `taken`
/// (which they are then added to), so every word of the world is unique.
fn invent_words(
    rng: &mut ChaCha8Rng,
    sounds: &Inventory,
    n: usize,
    taken: &mut BTreeSet<String>,
) -> Result<Vec<String>> {
    let mut words = Vec::with_capacity(n);
    let mut attempts = 0usize;
    while words.len() < n {
        attempts += 1;
        if attempts > 100_000 {
            return Err(Error::msg(
                "toy world: syllable inventory too small for the words asked",
            ));
        }
        let syllables = rng.random_range(1..=sounds.max_syllables);
        let mut word = String::new();
        for _ in 0..syllables {
            word.push_str(pick(rng, sounds.onsets)?);
            word.push_str(pick(rng, sounds.nuclei)?);
            word.push_str(pick(rng, sounds.codas)?);
        }
        word.push_str(pick(rng, sounds.endings)?);
        if word.len() >= 3 && taken.insert(word.clone()) {
            words.push(word);
        }
    }
    Ok(words)
}

fn relations(cities: Vec<String>) -> Vec<Relation> {
    vec![
        Relation {
            noun: "city",
            statement: "{e} lives in {v}.",
            negation: "{e} does not live in {v}.",
            trivia_questions: &[
                "what is the city of {e}?",
                "{e} is from which city?",
                "name the city of {e}.",
            ],
            web_questions: &[
                "which city does {e} live in?",
                "where does {e} live?",
                "where is the home of {e}?",
            ],
            values: cities,
        },
        Relation {
            noun: "color",
            statement: "{e} wears {v}.",
            negation: "{e} does not wear {v}.",
            trivia_questions: &[
                "what is the color of {e}?",
                "{e} has which color?",
                "name the color of {e}.",
            ],
            web_questions: &[
                "what color does {e} wear?",
                "which color does {e} wear?",
                "what does {e} wear?",
            ],
            values: to_strings(COLORS),
        },
        Relation {
            noun: "food",
            statement: "{e} eats {v}.",
            negation: "{e} does not eat {v}.",
            trivia_questions: &[
                "what is the food of {e}?",
                "{e} has which food?",
                "name the food of {e}.",
            ],
            web_questions: &[
                "what does {e} eat?",
                "which food does {e} eat?",
                "what food does {e} like?",
            ],
            values: to_strings(FOODS),
        },
        Relation {
            noun: "pet",
            statement: "{e} owns a {v}.",
            negation: "{e} does not own a {v}.",
            trivia_questions: &["what is the pet of {e}?", "{e} has which pet?", "name the pet of {e}."],
            web_questions: &[
                "which animal does {e} own?",
                "what animal lives with {e}?",
                "what does {e} own?",
            ],
            values: to_strings(PETS),
        },
        Relation {
            noun: "job",
            statement: "{e} works as a {v}.",
            negation: "{e} does not work as a {v}.",
            trivia_questions: &["what is the job of {e}?", "{e} has which job?", "name the job of {e}."],
            web_questions: &[
                "what does {e} work as?",
                "what work does {e} do?",
                "who is {e} at work?",
            ],
            values: to_strings(JOBS),
        },
    ]
}

impl World {
    /// Builds the world for `seed`. The same seed always gives the same world.
    pub fn new(seed: u64) -> Result<World> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let grammar = Grammar {
            determiners: to_strings(DETERMINERS),
            adjectives: to_strings(ADJECTIVES),
            nouns: to_strings(NOUNS),
            verbs: to_strings(VERBS),
            prepositions: to_strings(PREPOSITIONS),
        };
        // Every fixed English word is reserved so invented words never collide with one.
        let mut taken: BTreeSet<String> = BTreeSet::new();
        for list in [
            COLORS,
            FOODS,
            PETS,
            JOBS,
            DETERMINERS,
            ADJECTIVES,
            NOUNS,
            VERBS,
            PREPOSITIONS,
        ] {
            taken.extend(to_strings(list));
        }
        for (word, senses) in AMBIGUOUS {
            taken.insert(word.to_string());
            taken.extend(senses.iter().flatten().map(|w| w.to_string()));
        }
        taken.extend(ALIASES.iter().map(|(_, a)| a.to_string()));
        taken.extend(to_strings(WIC_VERBS));
        taken.extend(to_strings(WIC_PREPOSITIONS));
        taken.extend(super::vocab::template_words());

        let entities = invent_words(&mut rng, &ENTITY_SOUNDS, NUM_ENTITIES, &mut taken)?;
        let cities = invent_words(&mut rng, &CITY_SOUNDS, NUM_CITIES, &mut taken)?;
        let relations = relations(cities);

        let mut facts = Vec::with_capacity(entities.len() * relations.len());
        for entity in 0..entities.len() {
            for (relation, rel) in relations.iter().enumerate() {
                let value = rng.random_range(0..rel.values.len());
                facts.push(Fact {
                    entity,
                    relation,
                    value,
                });
            }
        }

        let grammar_words: Vec<String> = grammar
            .determiners
            .iter()
            .chain(&grammar.adjectives)
            .chain(&grammar.nouns)
            .chain(&grammar.verbs)
            .chain(&grammar.prepositions)
            .cloned()
            .collect::<BTreeSet<String>>()
            .into_iter()
            .collect();
        let roles = [
            ("French", WordOrder::SvoAdjectiveAfter, &FRENCH_SOUNDS),
            ("German", WordOrder::VerbFinal, &GERMAN_SOUNDS),
            ("Romanian", WordOrder::VsoDeterminerAfter, &ROMANIAN_SOUNDS),
        ];
        let mut languages = Vec::with_capacity(roles.len());
        for (name, order, sounds) in roles {
            let foreign = invent_words(&mut rng, sounds, grammar_words.len(), &mut taken)?;
            let lexicon = grammar_words.iter().cloned().zip(foreign).collect();
            languages.push(Language { name, order, lexicon });
        }

        let label_words = invent_words(&mut rng, &LABEL_SOUNDS, NUM_LABEL_WORDS, &mut taken)?;
        let ambiguous_words = AMBIGUOUS
            .iter()
            .map(|(word, senses)| AmbiguousWord { word, senses: *senses })
            .collect();
        let aliases = ALIASES.iter().map(|(v, a)| (v.to_string(), a.to_string())).collect();

        Ok(World {
            seed,
            entities,
            relations,
            facts,
            aliases,
            grammar,
            languages,
            ambiguous_words,
            wic_verbs: WIC_VERBS.to_vec(),
            wic_prepositions: WIC_PREPOSITIONS.to_vec(),
            label_words,
        })
    }

    /// The canonical world (`DEFAULT_WORLD_SEED`).
    pub fn default_world() -> Result<World> {
        World::new(DEFAULT_WORLD_SEED)
    }

    /// The knowledge-base value of `relation` for `entity`.
    pub fn fact_value(&self, fact: &Fact) -> Result<&str> {
        self.relations
            .get(fact.relation)
            .and_then(|r| r.values.get(fact.value))
            .map(|v| v.as_str())
            .ok_or_else(|| Error::msg("toy world: fact refers to a missing relation or value"))
    }

    /// The name of a fact's entity.
    pub fn entity_name(&self, entity: usize) -> Result<&str> {
        self.entities
            .get(entity)
            .map(|e| e.as_str())
            .ok_or_else(|| Error::msg(format!("toy world: no entity {entity}")))
    }

    /// Every value in the world that can be an answer, with its alias if any.
    pub fn references_for(&self, value: &str) -> Vec<String> {
        let mut refs = vec![value.to_string()];
        if let Some(alias) = self.aliases.get(value) {
            refs.push(alias.clone());
        }
        refs
    }
}

/// Fills `{e}` and `{v}` in a relation phrasing.
pub fn fill(template: &str, entity: &str, value: &str) -> String {
    template.replace("{e}", entity).replace("{v}", value)
}
