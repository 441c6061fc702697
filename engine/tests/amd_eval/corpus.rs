//! What the evaluation set holds: a deterministic list of answered calls drawn from a seed —
//! who answers (a person or a machine), in which language and voice, saying what, after how
//! long, over which noise and codec. `render.rs` turns each into audio.

/// A small, fixed pseudo-random generator (SplitMix64): the set depends on the seed alone, not
/// on a crate's version.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [lo, hi].
    pub fn range(&mut self, lo: u32, hi: u32) -> u32 {
        lo + (self.next_u64() % u64::from(hi - lo + 1)) as u32
    }

    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next_u64() % items.len() as u64) as usize]
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

/// Who answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label {
    Human,
    Machine,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    It,
    En,
}

/// Background noise on the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoiseKind {
    /// The codec's own noise only.
    None,
    White,
    /// Low-frequency rumble (traffic, wind).
    Rumble,
    /// Mains hum with a little hiss.
    Hum,
    /// Distant talkers: noise modulated at syllable rate.
    Babble,
}

/// What follows a machine's greeting.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Tail {
    Beep { hz: f64, ms: u32, rel_db: f64 },
    Silence,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Law {
    Pcmu,
    Pcma,
}

/// One answered call of the set.
#[derive(Debug, Clone)]
pub struct Call {
    pub id: usize,
    pub label: Label,
    pub lang: Lang,
    /// espeak-ng voice with variant, e.g. `it+f2`.
    pub voice: String,
    /// Words per minute and pitch (0–99) for espeak-ng.
    pub speed: u32,
    pub pitch: u32,
    pub text: &'static str,
    /// A person who says a second phrase after a pause ("Pronto? … Pronto?"), else `None`.
    pub again: Option<(u32, &'static str)>,
    /// Silence from the answer to the first word.
    pub lead_ms: u32,
    /// Silence between a machine's greeting and its beep.
    pub gap_ms: u32,
    pub tail: Tail,
    /// Speech level, RMS dBFS.
    pub speech_db: f64,
    pub noise: NoiseKind,
    /// Speech to noise, dB.
    pub snr_db: f64,
    pub law: Law,
    /// Seed of this call's noise.
    pub noise_seed: u64,
}

const HUMAN_IT: &[&str] = &[
    "Pronto?",
    "Sì, chi parla?",
    "Pronto, chi è?",
    "Sì?",
    "Pronto.",
    "Sì, pronto?",
    "Buongiorno.",
    "Pronto, mi dica.",
    "Chi parla?",
    "Pronto, sì?",
];

const HUMAN_EN: &[&str] = &[
    "Hello?",
    "Yes, who is this?",
    "Hello, who's calling?",
    "Hi.",
    "Yeah?",
    "Hello, speaking.",
];

const MACHINE_IT: &[&str] = &[
    "Lasciate un messaggio dopo il segnale.",
    "Sono Luca, lascia un messaggio.",
    "Segreteria telefonica. Parlate pure dopo il bip.",
    "Ciao! Non ci siamo, lasciate un messaggio.",
    "Risponde la segreteria telefonica di Marco. Lasciate un messaggio dopo il segnale acustico.",
    "Ciao, sono Giulia. Al momento non posso rispondere, lascia un messaggio e ti richiamerò \
     appena possibile.",
    "Il cliente da lei chiamato non è al momento raggiungibile. Si prega di lasciare un \
     messaggio dopo il segnale acustico.",
    "Salve, avete chiamato lo studio Rossi. I nostri uffici sono aperti dal lunedì al venerdì, \
     dalle nove alle diciotto. Lasciate nome e numero, vi richiameremo.",
    "Benvenuto nella casella vocale del numero tre tre tre, uno due tre, quattro cinque sei \
     sette. Registra il tuo messaggio dopo il segnale acustico.",
    "Pronto, sono Anna. Adesso non posso rispondere. Richiamami più tardi, oppure lascia un \
     messaggio.",
];

const MACHINE_EN: &[&str] = &[
    "Please leave a message after the tone.",
    "Hey, it's Mike. Leave a message.",
    "Hi, you've reached John. Leave a message after the beep.",
    "Hello, you have reached the voicemail of Sarah Miller. I'm not available right now, please \
     leave your name and number and I will call you back.",
    "The person you are calling is not available. Please record your message after the tone. \
     When you have finished recording, you may hang up.",
    "Thank you for calling Smith and Partners. Our office is currently closed. Please leave a \
     message and we will return your call on the next business day.",
];

const VARIANTS: &[&str] = &[
    "", "+f1", "+f2", "+f3", "+f4", "+m1", "+m2", "+m3", "+m4", "+m7",
];
const VOICES_IT: &[&str] = &["it"];
const VOICES_EN: &[&str] = &["en", "en-us", "en-gb-scotland"];
const BEEP_HZ: &[f64] = &[425.0, 440.0, 800.0, 1000.0, 1000.0, 1400.0];
const NOISES: &[NoiseKind] = &[
    NoiseKind::None,
    NoiseKind::White,
    NoiseKind::Rumble,
    NoiseKind::Hum,
    NoiseKind::Babble,
];

/// The set: `humans` people and `machines` answering machines, drawn from `seed`, shuffled
/// so labels alternate irregularly.
pub fn build(seed: u64, humans: usize, machines: usize) -> Vec<Call> {
    let mut rng = Rng::new(seed);
    let mut labels: Vec<Label> = std::iter::repeat_n(Label::Human, humans)
        .chain(std::iter::repeat_n(Label::Machine, machines))
        .collect();
    for i in (1..labels.len()).rev() {
        labels.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
    }
    labels
        .into_iter()
        .enumerate()
        .map(|(id, label)| draw(&mut rng, id, label))
        .collect()
}

fn draw(rng: &mut Rng, id: usize, label: Label) -> Call {
    let lang = if rng.chance(0.6) { Lang::It } else { Lang::En };
    let voices = if lang == Lang::It {
        VOICES_IT
    } else {
        VOICES_EN
    };
    let voice = format!("{}{}", rng.pick(voices), rng.pick(VARIANTS));
    let (text, again, lead_ms, tail) = match label {
        Label::Human => {
            let phrases = if lang == Lang::It { HUMAN_IT } else { HUMAN_EN };
            let again = rng
                .chance(0.3)
                .then(|| (rng.range(1500, 2500), *rng.pick(phrases)));
            (
                *rng.pick(phrases),
                again,
                rng.range(200, 1500),
                Tail::Silence,
            )
        }
        Label::Machine => {
            let greetings = if lang == Lang::It {
                MACHINE_IT
            } else {
                MACHINE_EN
            };
            let tail = if rng.chance(0.7) {
                Tail::Beep {
                    hz: *rng.pick(BEEP_HZ) * rng.uniform(0.98, 1.02),
                    ms: rng.range(180, 800),
                    rel_db: rng.uniform(-6.0, 6.0),
                }
            } else {
                Tail::Silence
            };
            (*rng.pick(greetings), None, rng.range(100, 1000), tail)
        }
    };
    let noise = *rng.pick(NOISES);
    let snr_db = match noise {
        NoiseKind::Babble => rng.uniform(20.0, 35.0),
        _ => rng.uniform(12.0, 35.0),
    };
    Call {
        id,
        label,
        lang,
        voice,
        speed: rng.range(140, 195),
        pitch: rng.range(30, 70),
        text,
        again,
        lead_ms,
        gap_ms: rng.range(150, 600),
        tail,
        speech_db: rng.uniform(-30.0, -18.0),
        noise,
        snr_db,
        law: if rng.chance(0.5) {
            Law::Pcma
        } else {
            Law::Pcmu
        },
        noise_seed: rng.next_u64(),
    }
}
