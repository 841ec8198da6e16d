//! Generators for single toy examples, one per task, each already in the
//! paper's template shape (Table 5 of the ProMoT paper), plus the fresh-rule
//! task whose rule is drawn per episode.
//!
//! Text conventions (the tokenizer's decoder reproduces them exactly): words
//! are separated by one space, and the punctuation marks "." "?" ":" "," are
//! attached to the word before them.

use std::collections::BTreeSet;

use rand::seq::SliceRandom;
use rand::Rng;

use super::world::{fill, pick, WordOrder, World};
use super::{Example, TaskKind};
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

/// A rule that only the demonstrations of an episode reveal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FreshRule {
    /// Input: `length` distinct words; output: the word at `position`.
    Pick { length: usize, position: usize },
    /// Input: two words of `domain`; output: their `codes`, in order.
    Map { domain: Vec<String>, codes: Vec<String> },
    /// Input: a word from one of two classes; output: that class's label.
    Label {
        classes: [Vec<String>; 2],
        labels: [String; 2],
    },
}

impl FreshRule {
    /// Draws a new rule; the family and its parameters are uniform.
    pub fn draw<R: Rng + ?Sized>(world: &World, rng: &mut R) -> Result<FreshRule> {
        let mut labels = world.label_words.clone();
        labels.shuffle(rng);
        match rng.random_range(0..3) {
            0 => {
                let length = rng.random_range(4..=5);
                Ok(FreshRule::Pick {
                    length,
                    position: rng.random_range(0..length),
                })
            }
            1 => {
                let mut nouns = world.grammar.nouns.clone();
                nouns.shuffle(rng);
                nouns.truncate(4);
                labels.truncate(4);
                if nouns.len() < 4 || labels.len() < 4 {
                    return Err(Error::msg("toy world: too few words for a mapping rule"));
                }
                Ok(FreshRule::Map {
                    domain: nouns,
                    codes: labels,
                })
            }
            _ => {
                // Classes are the value sets of two different relations (not
                // the invented city names), e.g. colors versus foods.
                let mut relations: Vec<usize> = (1..world.relations.len()).collect();
                relations.shuffle(rng);
                let class = |i: usize| -> Result<Vec<String>> {
                    relations
                        .get(i)
                        .and_then(|r| world.relations.get(*r))
                        .map(|r| r.values.clone())
                        .ok_or_else(|| Error::msg("toy world: too few relations for a label rule"))
                };
                let (a, b) = (class(0)?, class(1)?);
                let (Some(la), Some(lb)) = (labels.first(), labels.get(1)) else {
                    return Err(Error::msg("toy world: too few label words"));
                };
                Ok(FreshRule::Label {
                    classes: [a, b],
                    labels: [la.clone(), lb.clone()],
                })
            }
        }
    }

    fn pool(world: &World) -> Vec<&str> {
        let g = &world.grammar;
        let mut words: Vec<&str> = g
            .nouns
            .iter()
            .chain(&g.adjectives)
            .chain(&g.verbs)
            .map(|s| s.as_str())
            .collect();
        words.sort();
        words.dedup();
        words
    }

    /// A random example of this rule.
    pub fn example<R: Rng + ?Sized>(&self, world: &World, rng: &mut R) -> Result<Example> {
        self.example_with(world, rng, None)
    }

    /// An example whose input includes the given domain word (Map) or comes
    /// from the given class (Label); `None` means unconstrained.
    fn example_with<R: Rng + ?Sized>(&self, world: &World, rng: &mut R, forced: Option<usize>) -> Result<Example> {
        let (x, y) = match self {
            FreshRule::Pick { length, position } => {
                let mut pool = FreshRule::pool(world);
                pool.shuffle(rng);
                pool.truncate(*length);
                let y = pool
                    .get(*position)
                    .ok_or_else(|| Error::msg("toy world: pick rule out of range"))?;
                (pool.join(" "), y.to_string())
            }
            FreshRule::Map { domain, codes } => {
                let first = match forced {
                    Some(i) => i % domain.len().max(1),
                    None => rng.random_range(0..domain.len().max(1)),
                };
                let second = (first + rng.random_range(1..domain.len().max(2))) % domain.len().max(1);
                let mut order = [first, second];
                order.shuffle(rng);
                let word = |i: usize, list: &[String]| list.get(i).cloned().unwrap_or_default();
                let x = format!("{} {}", word(order[0], domain), word(order[1], domain));
                let y = format!("{} {}", word(order[0], codes), word(order[1], codes));
                (x, y)
            }
            FreshRule::Label { classes, labels } => {
                let class = forced.unwrap_or_else(|| rng.random_range(0..2)) % 2;
                (pick(rng, &classes[class])?.clone(), labels[class].clone())
            }
        };
        Ok(Example::new(format!("Input: {x} Output:"), y))
    }

    /// Which constraint (see `example_with`) makes the i-th demonstration
    /// cover what the query needs: Map demonstrations show each of the
    /// query's words, Label demonstrations show both labels.
    pub(crate) fn covering_constraint(&self, query: &Example, i: usize) -> Option<usize> {
        match self {
            FreshRule::Pick { .. } => None,
            FreshRule::Map { domain, .. } => {
                let word = rule_input(query)?.split(' ').nth(i)?;
                domain.iter().position(|d| d == word)
            }
            FreshRule::Label { .. } => (i < 2).then_some(i),
        }
    }

    /// Whether the `shown` examples of this rule determine `example`'s
    /// answer: Pick needs one example (it shows the position), Map each of
    /// the input's words, Label an example of the same class.
    pub(crate) fn revealed_by(&self, example: &Example, shown: &[&Example]) -> bool {
        match self {
            FreshRule::Pick { .. } => !shown.is_empty(),
            FreshRule::Map { .. } => {
                let known: BTreeSet<&str> = shown
                    .iter()
                    .filter_map(|e| rule_input(e))
                    .flat_map(|x| x.split(' '))
                    .collect();
                rule_input(example).is_some_and(|x| x.split(' ').all(|w| known.contains(w)))
            }
            FreshRule::Label { .. } => shown.iter().any(|e| e.target == example.target),
        }
    }

    /// A constrained example (see `covering_constraint`).
    pub(crate) fn covering_example<R: Rng + ?Sized>(
        &self,
        world: &World,
        rng: &mut R,
        constraint: Option<usize>,
    ) -> Result<Example> {
        self.example_with(world, rng, constraint)
    }
}

/// The words of a fresh-rule input, `x` of "Input: x Output:".
fn rule_input(example: &Example) -> Option<&str> {
    example.input.strip_prefix("Input: ")?.strip_suffix(" Output:")
}
