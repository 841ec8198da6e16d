//! Generators for single toy examples, one per task, each already in the
//! paper's template shape (Table 5 of the ProMoT paper), plus the fresh-rule
//! task whose rule is drawn per episode.
//!
//! Text conventions (the tokenizer's decoder reproduces them exactly): words
//! are separated by one space, and the punctuation marks "." "?" ":" "," are
//! attached to the word before them.

use rand::seq::SliceRandom;
use rand::Rng;

use super::world::{fill, pick, WordOrder, World};
use super::{Example, FreshRule, TaskKind};
use crate::data::template;
use crate::error::{Error, Result};

/// The target word of a dataset label, from the one label table.
fn label(task: &str, name: &str) -> Result<String> {
    template::label_word(task, &serde_json::Value::String(name.to_string()))
}

/// A claim about an entity: (entity index, relation index, value index).
/// Unlike `Fact` it need not agree with the knowledge base: premises and
/// articles state arbitrary claims, so their tasks are decided by reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Claim {
    entity: usize,
    relation: usize,
    value: usize,
}

impl World {
    fn claim_parts(&self, claim: Claim) -> Result<(&str, &super::world::Relation, &str)> {
        let entity = self.entity_name(claim.entity)?;
        let relation = self
            .relations
            .get(claim.relation)
            .ok_or_else(|| Error::msg(format!("toy world: no relation {}", claim.relation)))?;
        let value = relation
            .values
            .get(claim.value)
            .ok_or_else(|| Error::msg(format!("toy world: no value {}", claim.value)))?;
        Ok((entity, relation, value))
    }

    fn statement(&self, claim: Claim) -> Result<String> {
        let (e, r, v) = self.claim_parts(claim)?;
        Ok(fill(r.statement, e, v))
    }

    fn negation(&self, claim: Claim) -> Result<String> {
        let (e, r, v) = self.claim_parts(claim)?;
        Ok(fill(r.negation, e, v))
    }

    /// "the city of zorp is vella." — a paraphrase of the statement.
    fn paraphrase(&self, claim: Claim) -> Result<String> {
        let (e, r, v) = self.claim_parts(claim)?;
        Ok(format!("the {} of {e} is {v}.", r.noun))
    }

    fn random_claim<R: Rng + ?Sized>(&self, rng: &mut R, entity: usize, relation: usize) -> Result<Claim> {
        let count = self.relations.get(relation).map(|r| r.values.len()).unwrap_or(0);
        if count == 0 {
            return Err(Error::msg(format!("toy world: relation {relation} has no values")));
        }
        Ok(Claim {
            entity,
            relation,
            value: rng.random_range(0..count),
        })
    }

    /// Same entity and relation as `claim`, with a value that no premise
    /// claim states: a false hypothesis is one whose value the premise never
    /// mentions, so a reader decides it by looking the value up.
    fn unstated_value<R: Rng + ?Sized>(&self, rng: &mut R, claim: Claim, premise: &[Claim]) -> Result<Claim> {
        let count = self.relations.get(claim.relation).map(|r| r.values.len()).unwrap_or(0);
        let unstated: Vec<usize> = (0..count)
            .filter(|v| !premise.iter().any(|c| c.relation == claim.relation && c.value == *v))
            .collect();
        let value = *pick(rng, &unstated)
            .map_err(|_| Error::msg("toy world: a relation needs an unstated value for a false hypothesis"))?;
        Ok(Claim { value, ..claim })
    }

    /// `n` claims about distinct (entity, relation) pairs, drawn from a few entities.
    fn premise_claims<R: Rng + ?Sized>(&self, rng: &mut R, n: usize) -> Result<Vec<Claim>> {
        let mut claims: Vec<Claim> = Vec::with_capacity(n);
        let people: Vec<usize> = (0..2)
            .map(|_| rng.random_range(0..self.entities.len().max(1)))
            .collect();
        while claims.len() < n {
            let entity = *pick(rng, &people)?;
            let relation = rng.random_range(0..self.relations.len().max(1));
            if claims.iter().all(|c| (c.entity, c.relation) != (entity, relation)) {
                claims.push(self.random_claim(rng, entity, relation)?);
            }
        }
        Ok(claims)
    }

    fn premise_text(&self, claims: &[Claim]) -> Result<String> {
        let sentences = claims.iter().map(|c| self.statement(*c)).collect::<Result<Vec<_>>>()?;
        Ok(sentences.join(" "))
    }

    /// A hypothesis about an (entity, relation) pair the premise states, with
    /// the wanted truth: true restates the premise's value (as its sentence
    /// or as a paraphrase), false names a value the premise never states.
    fn decidable_hypothesis<R: Rng + ?Sized>(&self, rng: &mut R, premise: &[Claim], truth: bool) -> Result<String> {
        let stated = *pick(rng, premise)?;
        let asserted = if truth {
            stated
        } else {
            self.unstated_value(rng, stated, premise)?
        };
        if rng.random_bool(0.5) {
            self.statement(asserted)
        } else {
            self.paraphrase(asserted)
        }
    }

    /// A hypothesis about an entity the premise does not mention.
    fn unrelated_hypothesis<R: Rng + ?Sized>(&self, rng: &mut R, premise: &[Claim]) -> Result<String> {
        let unmentioned: Vec<usize> = (0..self.entities.len())
            .filter(|e| !premise.iter().any(|c| c.entity == *e))
            .collect();
        let entity = *pick(rng, &unmentioned)?;
        let relation = rng.random_range(0..self.relations.len().max(1));
        let claim = self.random_claim(rng, entity, relation)?;
        match rng.random_range(0..4) {
            0 => self.negation(claim),
            1 => self.paraphrase(claim),
            _ => self.statement(claim),
        }
    }

    fn rte<R: Rng + ?Sized>(&self, rng: &mut R) -> Result<Example> {
        let size = rng.random_range(2..=3);
        let premise = self.premise_claims(rng, size)?;
        let truth = rng.random_bool(0.5);
        let hypothesis = self.decidable_hypothesis(rng, &premise, truth)?;
        let premise = self.premise_text(&premise)?;
        let input = template::fill_named("rte", &[("premise", &premise), ("hypothesis", &hypothesis)])?;
        Ok(Example::new(
            input,
            label("rte", if truth { "entailment" } else { "not_entailment" })?,
        ))
    }

    fn cb<R: Rng + ?Sized>(&self, rng: &mut R) -> Result<Example> {
        let size = rng.random_range(2..=3);
        let premise = self.premise_claims(rng, size)?;
        let (hypothesis, label_name) = match rng.random_range(0..3) {
            0 => (self.decidable_hypothesis(rng, &premise, true)?, "entailment"),
            1 => (self.decidable_hypothesis(rng, &premise, false)?, "contradiction"),
            _ => (self.unrelated_hypothesis(rng, &premise)?, "neutral"),
        };
        let premise = self.premise_text(&premise)?;
        let input = template::fill_named("cb", &[("premise", &premise), ("hypothesis", &hypothesis)])?;
        Ok(Example::new(input, label("cb", label_name)?))
    }

    fn wic_sentence<R: Rng + ?Sized>(&self, rng: &mut R, word: &str, cue: &str) -> Result<String> {
        let entity = pick(rng, &self.entities)?;
        let verb = pick(rng, &self.wic_verbs)?;
        let prep = pick(rng, &self.wic_prepositions)?;
        Ok(if rng.random_bool(0.5) {
            format!("{entity} {verb} the {word} {prep} the {cue}.")
        } else {
            format!("{prep} the {cue} {entity} {verb} the {word}.")
        })
    }

    fn wic<R: Rng + ?Sized>(&self, rng: &mut R) -> Result<Example> {
        let ambiguous = pick(rng, &self.ambiguous_words)?;
        let same = rng.random_bool(0.5);
        let first = rng.random_range(0..2usize);
        let second = if same { first } else { 1 - first };
        let cue1 = pick(rng, &ambiguous.senses[first])?;
        let cue2 = pick(rng, &ambiguous.senses[second])?;
        let s1 = self.wic_sentence(rng, ambiguous.word, cue1)?;
        let s2 = self.wic_sentence(rng, ambiguous.word, cue2)?;
        let fields = [
            ("sentence1", s1.as_str()),
            ("sentence2", s2.as_str()),
            ("word", ambiguous.word),
        ];
        let input = template::fill_named("wic", &fields)?;
        Ok(Example::new(input, label("wic", if same { "true" } else { "false" })?))
    }

    /// Closed-book question about a knowledge-base fact in one of two styles.
    fn question<R: Rng + ?Sized>(&self, rng: &mut R, web_style: bool) -> Result<Example> {
        let fact = *pick(rng, &self.facts)?;
        let entity = self.entity_name(fact.entity)?;
        let value = self.fact_value(&fact)?;
        let relation = self
            .relations
            .get(fact.relation)
            .ok_or_else(|| Error::msg("toy world: fact with a missing relation"))?;
        let templates = if web_style {
            relation.web_questions
        } else {
            relation.trivia_questions
        };
        let question = fill(pick(rng, templates)?, entity, value);
        let mut example = Example::new(template::fill_named("qa", &[("question", &question)])?, value);
        example.references = self.references_for(value);
        Ok(example)
    }

    /// The way back: a toy-French sentence to English. Pretraining only ever
    /// translated out of English, so this is new to the toy model, and its
    /// answers (English sentences of the translation grammar) are a format no
    /// in-context task asks for: a fine-tuning target with headroom.
    fn back_translation<R: Rng + ?Sized>(&self, rng: &mut R, language: usize) -> Result<Example> {
        let forward = self.translation(rng, language)?;
        let lang = &self.languages[language];
        let english = forward
            .input
            .rsplit_once(": ")
            .map(|(_, sentence)| sentence.to_string())
            .ok_or_else(|| {
                Error::msg(format!(
                    "toy world: a translation input without its sentence: {}",
                    forward.input
                ))
            })?;
        let fields = [
            ("source_language", lang.name),
            ("target_language", "English"),
            ("source", forward.target.as_str()),
        ];
        Ok(Example::new(template::fill_named("translation", &fields)?, english))
    }

    fn translation<R: Rng + ?Sized>(&self, rng: &mut R, language: usize) -> Result<Example> {
        let lang = self
            .languages
            .get(language)
            .ok_or_else(|| Error::msg(format!("toy world: no language {language}")))?;
        let sentence = Sentence::random(self, rng)?;
        let english = sentence.words_in(None).join(" ");
        let foreign = sentence
            .words_in(Some(lang.order))
            .iter()
            .map(|w| {
                lang.lexicon
                    .get(*w)
                    .cloned()
                    .ok_or_else(|| Error::msg(format!("toy world: {} has no word for {w}", lang.name)))
            })
            .collect::<Result<Vec<_>>>()?;
        let source = format!("{english}.");
        let fields = [
            ("source_language", "English"),
            ("target_language", lang.name),
            ("source", source.as_str()),
        ];
        let input = template::fill_named("translation", &fields)?;
        Ok(Example::new(input, format!("{}.", foreign.join(" "))))
    }

    /// An article about one main entity (mentioned three times, first
    /// sentence about it) among one-off distractor claims. The summary names
    /// the main entity's job and city, so it is recoverable from the article.
    fn xsum<R: Rng + ?Sized>(&self, rng: &mut R) -> Result<Example> {
        let relation = |noun: &str| {
            self.relations
                .iter()
                .position(|r| r.noun == noun)
                .ok_or_else(|| Error::msg(format!("toy world: no relation '{noun}'")))
        };
        let (city, job) = (relation("city")?, relation("job")?);
        let extras: Vec<usize> = (0..self.relations.len()).filter(|r| *r != city && *r != job).collect();
        if self.entities.len() < 5 {
            return Err(Error::msg("toy world: xsum needs at least five entities"));
        }
        let main = rng.random_range(0..self.entities.len());
        let extra = *pick(rng, &extras)?;
        let city_claim = self.random_claim(rng, main, city)?;
        let job_claim = self.random_claim(rng, main, job)?;
        let mut main_claims = [city_claim, job_claim, self.random_claim(rng, main, extra)?];
        main_claims.shuffle(rng);
        let mut rest: Vec<Claim> = main_claims[1..].to_vec();
        let mut others: Vec<usize> = Vec::new();
        while others.len() < 4 {
            let e = rng.random_range(0..self.entities.len());
            if e != main && !others.contains(&e) {
                others.push(e);
            }
        }
        for e in others {
            let relation = rng.random_range(0..self.relations.len());
            rest.push(self.random_claim(rng, e, relation)?);
        }
        rest.shuffle(rng);
        let mut sentences = vec![self.statement(main_claims[0])?];
        for claim in rest {
            sentences.push(self.statement(claim)?);
        }
        let (_, _, city_name) = self.claim_parts(city_claim)?;
        let (entity, _, job_name) = self.claim_parts(job_claim)?;
        let input = template::fill_named("summarization", &[("article", &sentences.join(" "))])?;
        Ok(Example::new(
            input,
            format!("the {job_name} {entity} lives in {city_name}."),
        ))
    }

    /// One example of a non-episodic task (every task but `fresh_rule`,
    /// which needs a rule: see `FreshRule`).
    pub(crate) fn generate<R: Rng + ?Sized>(&self, task: TaskKind, rng: &mut R) -> Result<Example> {
        match task {
            TaskKind::Rte => self.rte(rng),
            TaskKind::Cb => self.cb(rng),
            TaskKind::Wic => self.wic(rng),
            TaskKind::TriviaQa => self.question(rng, false),
            TaskKind::WebQuestions => self.question(rng, true),
            TaskKind::EnFr => self.translation(rng, 0),
            TaskKind::EnDe => self.translation(rng, 1),
            TaskKind::EnRo => self.translation(rng, 2),
            TaskKind::FrEn => self.back_translation(rng, 0),
            TaskKind::Xsum => self.xsum(rng),
            TaskKind::FreshRule => FreshRule::draw(self, rng)?.example(self, rng),
        }
    }
}

/// A noun phrase of the translation grammar.
#[derive(Debug, Clone)]
struct NounPhrase<'a> {
    determiner: &'a str,
    adjective: Option<&'a str>,
    noun: &'a str,
}

impl<'a> NounPhrase<'a> {
    fn random<R: Rng + ?Sized>(world: &'a World, rng: &mut R) -> Result<Self> {
        let g = &world.grammar;
        let adjective = if rng.random_bool(0.4) {
            Some(pick(rng, &g.adjectives)?.as_str())
        } else {
            None
        };
        Ok(NounPhrase {
            determiner: pick(rng, &g.determiners)?,
            adjective,
            noun: pick(rng, &g.nouns)?,
        })
    }

    fn push_words(&self, order: Option<WordOrder>, out: &mut Vec<&'a str>) {
        let adjective = self.adjective.into_iter();
        match order {
            None | Some(WordOrder::VerbFinal) => {
                out.push(self.determiner);
                out.extend(adjective);
                out.push(self.noun);
            }
            Some(WordOrder::SvoAdjectiveAfter) => {
                out.push(self.determiner);
                out.push(self.noun);
                out.extend(adjective);
            }
            Some(WordOrder::VsoDeterminerAfter) => {
                out.push(self.noun);
                out.push(self.determiner);
                out.extend(adjective);
            }
        }
    }
}

/// A sentence of the translation grammar: NP verb NP [preposition NP].
#[derive(Debug, Clone)]
struct Sentence<'a> {
    subject: NounPhrase<'a>,
    verb: &'a str,
    object: NounPhrase<'a>,
    phrase: Option<(&'a str, NounPhrase<'a>)>,
}

/// English sentences of the grammar stay within 4..=10 words.
const MAX_SENTENCE_WORDS: usize = 10;

impl<'a> Sentence<'a> {
    fn random<R: Rng + ?Sized>(world: &'a World, rng: &mut R) -> Result<Self> {
        loop {
            let phrase = if rng.random_bool(0.5) {
                Some((
                    pick(rng, &world.grammar.prepositions)?.as_str(),
                    NounPhrase::random(world, rng)?,
                ))
            } else {
                None
            };
            let sentence = Sentence {
                subject: NounPhrase::random(world, rng)?,
                verb: pick(rng, &world.grammar.verbs)?,
                object: NounPhrase::random(world, rng)?,
                phrase,
            };
            if sentence.words_in(None).len() <= MAX_SENTENCE_WORDS {
                return Ok(sentence);
            }
        }
    }

    /// The words (without the final ".") in English order (`None`) or in a
    /// synthetic language's order; the words are still English and are
    /// mapped through the lexicon afterwards.
    fn words_in(&self, order: Option<WordOrder>) -> Vec<&'a str> {
        let mut out = Vec::with_capacity(MAX_SENTENCE_WORDS);
        let push_phrase = |out: &mut Vec<&'a str>| {
            if let Some((prep, np)) = &self.phrase {
                out.push(*prep);
                np.push_words(order, out);
            }
        };
        match order {
            None | Some(WordOrder::SvoAdjectiveAfter) => {
                self.subject.push_words(order, &mut out);
                out.push(self.verb);
                self.object.push_words(order, &mut out);
                push_phrase(&mut out);
            }
            Some(WordOrder::VerbFinal) => {
                self.subject.push_words(order, &mut out);
                self.object.push_words(order, &mut out);
                push_phrase(&mut out);
                out.push(self.verb);
            }
            Some(WordOrder::VsoDeterminerAfter) => {
                out.push(self.verb);
                self.subject.push_words(order, &mut out);
                self.object.push_words(order, &mut out);
                push_phrase(&mut out);
            }
        }
        out
    }
}
