//! Understanding what customers type, by rules: a day ("tomorrow", "friday", "mañana",
//! "sexta", "12/3", "3 de diciembre"), a time ("5pm", "17:00", "a las 5", "às 17h"), a service
//! named with a typo, and the language a message is in (English, Spanish, Portuguese). Pure, no
//! network, no model: what it does not recognise it leaves to the buttons.

use chrono::{Datelike as _, Duration, NaiveDate, NaiveTime, Weekday};
use serde::{Deserialize, Serialize};

/// The languages the bot speaks.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Language {
    #[default]
    En,
    Es,
    Pt,
}

impl Language {
    pub const ALL: [Language; 3] = [Language::En, Language::Es, Language::Pt];
}

/// A day and a time a customer asked for, either possibly missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct When {
    pub date: Option<NaiveDate>,
    pub time: Option<NaiveTime>,
}

impl When {
    pub fn is_empty(&self) -> bool {
        self.date.is_none() && self.time.is_none()
    }
}

/// Lowercase, accents removed; words split on whitespace and punctuation other than `:`, `/`,
/// `.` between digits (kept for "17:00", "12/3", "17.30").
fn words(text: &str) -> Vec<String> {
    use unicode_normalization::UnicodeNormalization as _;
    let plain: String = text
        .nfd()
        .filter(|c| !('\u{0300}'..='\u{036f}').contains(c))
        .collect::<String>()
        .to_lowercase();
    let chars: Vec<char> = plain.chars().collect();
    let mut out = Vec::new();
    let mut word = String::new();
    for (i, c) in chars.iter().enumerate() {
        let between_digits = |c: char| {
            matches!(c, ':' | '/' | '.')
                && i > 0
                && chars[i - 1].is_ascii_digit()
                && chars.get(i + 1).is_some_and(|n| n.is_ascii_digit())
        };
        if c.is_alphanumeric() || between_digits(*c) {
            word.push(*c);
        } else if !word.is_empty() {
            out.push(std::mem::take(&mut word));
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

const WEEKDAYS: &[(Weekday, &[&str])] = &[
    (Weekday::Mon, &["monday", "mon", "lunes", "segunda", "seg"]),
    (
        Weekday::Tue,
        &["tuesday", "tue", "tues", "martes", "terca", "ter"],
    ),
    (
        Weekday::Wed,
        &["wednesday", "wed", "miercoles", "quarta", "qua"],
    ),
    (
        Weekday::Thu,
        &["thursday", "thu", "thurs", "jueves", "quinta", "qui"],
    ),
    (Weekday::Fri, &["friday", "fri", "viernes", "sexta", "sex"]),
    (Weekday::Sat, &["saturday", "sat", "sabado", "sab"]),
    (Weekday::Sun, &["sunday", "sun", "domingo", "dom"]),
];

const MONTHS: &[&[&str]] = &[
    &["january", "jan", "enero", "ene", "janeiro"],
    &["february", "feb", "febrero", "fevereiro", "fev"],
    &["march", "mar", "marzo", "marco"],
    &["april", "apr", "abril", "abr"],
    &["may", "mayo", "maio", "mai"],
    &["june", "jun", "junio", "junho"],
    &["july", "jul", "julio", "julho"],
    &["august", "aug", "agosto", "ago"],
    &[
        "september",
        "sep",
        "sept",
        "septiembre",
        "setiembre",
        "setembro",
        "set",
    ],
    &["october", "oct", "octubre", "outubro", "out"],
    &["november", "nov", "noviembre", "novembro"],
    &["december", "dec", "diciembre", "dic", "dezembro", "dez"],
];

/// The day and time in `text`, relative to `today` (the business's local date). A weekday is
/// its next occurrence (today included); a date without a year is its next occurrence.
pub fn when(text: &str, today: NaiveDate) -> When {
    let w = words(text);
    When {
        date: date_in(&w, today),
        time: time_in(&w),
    }
}

fn date_in(w: &[String], today: NaiveDate) -> Option<NaiveDate> {
    let has = |s: &str| w.iter().any(|x| x == s);
    let has_seq = |a: &str, b: &str| w.windows(2).any(|p| p[0] == a && p[1] == b);
    let has_seq3 =
        |a: &str, b: &str, c: &str| w.windows(3).any(|p| p[0] == a && p[1] == b && p[2] == c);
    if has_seq3("day", "after", "tomorrow")
        || has_seq("pasado", "manana")
        || has_seq3("depois", "de", "amanha")
    {
        return Some(today + Duration::days(2));
    }
    // "por la mañana" is "in the morning", not "tomorrow".
    let morning = has_seq("la", "manana");
    if has("tomorrow") || has("tmrw") || (has("manana") && !morning) || has("amanha") {
        return Some(today + Duration::days(1));
    }
    if has("today") || has("hoy") || has("hoje") || has("tonight") {
        return Some(today);
    }
    for (i, word) in w.iter().enumerate() {
        // "12/3", "12/03", "12/3/2027": day first, as in Spain, Portugal and Brazil.
        if word.contains('/') {
            let parts: Vec<u32> = word.split('/').filter_map(|p| p.parse().ok()).collect();
            if let [day, month, ref rest @ ..] = parts[..] {
                let year = rest.first().map(|y| {
                    if *y < 100 {
                        2000 + *y as i32
                    } else {
                        *y as i32
                    }
                });
                if let Some(date) = next_date(today, month, day, year) {
                    return Some(date);
                }
            }
        }
        // "3 dec", "3 de diciembre", "dec 3", "3rd december".
        if let Some(month) = month_of(word) {
            let number = |s: Option<&String>| {
                s.and_then(|s| {
                    s.trim_end_matches(|c: char| c.is_ascii_alphabetic())
                        .parse::<u32>()
                        .ok()
                })
                .filter(|d| (1..=31).contains(d))
            };
            let before = i.checked_sub(1).and_then(|j| {
                if w[j] == "de" {
                    j.checked_sub(1).map(|k| &w[k])
                } else {
                    Some(&w[j])
                }
            });
            if let Some(day) = number(before).or_else(|| number(w.get(i + 1)))
                && let Some(date) = next_date(today, month, day, None)
            {
                return Some(date);
            }
        }
    }
    for word in w {
        if let Some((weekday, _)) = WEEKDAYS
            .iter()
            .find(|(_, names)| names.contains(&word.as_str()) && word.len() >= 5)
        {
            return Some(next_weekday(today, *weekday));
        }
    }
    // Short weekday names ("fri", "sab") only next to a time or alone: too easy to confuse
    // with other words otherwise ("sex", "set", "mar").
    if w.len() <= 3 {
        for word in w {
            if let Some((weekday, _)) = WEEKDAYS.iter().find(|(_, n)| n.contains(&word.as_str())) {
                return Some(next_weekday(today, *weekday));
            }
        }
    }
    None
}

/// The next `weekday` from `today`, today included.
fn next_weekday(today: NaiveDate, weekday: Weekday) -> NaiveDate {
    let ahead = (7 + i64::from(weekday.num_days_from_monday())
        - i64::from(today.weekday().num_days_from_monday()))
        % 7;
    today + Duration::days(ahead)
}

fn month_of(word: &str) -> Option<u32> {
    MONTHS
        .iter()
        .position(|names| names.contains(&word) && word.len() >= 3)
        .map(|i| i as u32 + 1)
}

/// `day`/`month` of `year`, or its next occurrence from `today` when no year is given.
fn next_date(today: NaiveDate, month: u32, day: u32, year: Option<i32>) -> Option<NaiveDate> {
    match year {
        Some(year) => NaiveDate::from_ymd_opt(year, month, day).filter(|d| *d >= today),
        None => NaiveDate::from_ymd_opt(today.year(), month, day)
            .filter(|d| *d >= today)
            .or_else(|| NaiveDate::from_ymd_opt(today.year() + 1, month, day)),
    }
}

fn time_in(w: &[String]) -> Option<NaiveTime> {
    let at_words = ["at", "las", "la", "as", "around", "sobre", "volta"];
    for (i, word) in w.iter().enumerate() {
        let next = w.get(i + 1).map(String::as_str);
        let after_at = i > 0 && at_words.contains(&w[i - 1].as_str());
        // "5pm", "5:30pm", "5 pm", "17h", "17h30", "17:00", "17.30".
        let (digits, suffix) = split_number(word);
        let Some((hour, minute)) = hour_minute(digits) else {
            continue;
        };
        let suffix = if suffix.is_empty() {
            next.filter(|n| matches!(*n, "pm" | "am" | "h" | "hs" | "horas" | "hrs"))
                .unwrap_or("")
        } else {
            suffix
        };
        let explicit = digits.contains(':') || digits.contains('.');
        let hour = match suffix {
            "pm" if hour < 12 => hour + 12,
            "am" if hour == 12 => 0,
            "am" | "pm" => hour,
            _ if suffix.starts_with('h') => match suffix[1..].parse::<u32>() {
                Ok(m) if m < 60 && minute == 0 => return NaiveTime::from_hms_opt(hour, m, 0),
                _ => hour,
            },
            // A bare number is a time only after "at"/"a las"/"às", or with minutes.
            "" if explicit || after_at => {
                // "a las 5": business hours, so the afternoon.
                if !explicit && (1..=7).contains(&hour) {
                    hour + 12
                } else {
                    hour
                }
            }
            _ => continue,
        };
        if let Some(time) = NaiveTime::from_hms_opt(hour, minute, 0) {
            return Some(time);
        }
    }
    None
}

/// "17h30" → ("17", "h30"); "5pm" → ("5", "pm"); "17:00" → ("17:00", "").
fn split_number(word: &str) -> (&str, &str) {
    let end = word
        .find(|c: char| !(c.is_ascii_digit() || c == ':' || c == '.'))
        .unwrap_or(word.len());
    (&word[..end], &word[end..])
}

fn hour_minute(digits: &str) -> Option<(u32, u32)> {
    let (h, m) = match digits.split_once([':', '.']) {
        Some((h, m)) if m.len() == 2 => (h.parse().ok()?, m.parse().ok()?),
        Some(_) => return None,
        None if !digits.is_empty() && digits.len() <= 2 => (digits.parse().ok()?, 0),
        None => return None,
    };
    (h < 24 && m < 60).then_some((h, m))
}

/// The one of `names` that `text` names, allowing a typo or two in longer words; `None` when
/// none or several do.
pub fn named<'n>(text: &str, names: &[&'n str]) -> Option<&'n str> {
    let typed = words(text);
    let mut hits = names.iter().filter(|name| {
        let name_words = words(name);
        !name_words.is_empty()
            && name_words.iter().all(|nw| {
                typed
                    .iter()
                    .any(|tw| tw == nw || (nw.len() >= 4 && distance(tw, nw) <= allowed(nw)))
            })
    });
    let first = hits.next()?;
    hits.next().is_none().then_some(*first)
}

fn allowed(word: &str) -> usize {
    if word.chars().count() >= 8 { 2 } else { 1 }
}

/// Edit distance with adjacent transpositions (optimal string alignment).
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

const LANGUAGE_WORDS: &[(Language, &[&str])] = &[
    (
        Language::En,
        &[
            "hi",
            "hello",
            "hey",
            "want",
            "book",
            "booking",
            "appointment",
            "tomorrow",
            "today",
            "please",
            "thanks",
            "good",
            "morning",
            "afternoon",
            "evening",
            "can",
            "i",
            "the",
            "my",
            "at",
            "delete",
            "data",
        ],
    ),
    (
        Language::Es,
        &[
            "hola", "buenas", "buenos", "dias", "quiero", "cita", "reservar", "manana", "hoy",
            "gracias", "por", "favor", "tardes", "puedo", "una", "el", "la", "las", "mi", "para",
            "mis", "datos", "borrar",
        ],
    ),
    (
        Language::Pt,
        &[
            "ola", "oi", "bom", "boa", "dia", "quero", "marcar", "agendar", "horario", "amanha",
            "hoje", "obrigado", "obrigada", "tarde", "posso", "um", "uma", "o", "meu", "as",
            "meus", "dados", "apagar",
        ],
    ),
];

/// The language `text` is most likely in, if any word says so clearly (ties: none).
pub fn language_of(text: &str) -> Option<Language> {
    let w = words(text);
    let mut scores: Vec<(Language, usize)> = LANGUAGE_WORDS
        .iter()
        .map(|(lang, vocab)| {
            (
                *lang,
                w.iter().filter(|x| vocab.contains(&x.as_str())).count(),
            )
        })
        .collect();
    scores.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    match scores[..] {
        [(lang, best), (_, next), ..] if best > next => Some(lang),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Monday 30 November 2026.
    fn today() -> NaiveDate {
        "2026-11-30".parse().unwrap()
    }

    fn at(h: u32, m: u32) -> Option<NaiveTime> {
        NaiveTime::from_hms_opt(h, m, 0)
    }

    fn day(s: &str) -> Option<NaiveDate> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn days_and_times_in_three_languages() {
        let cases = [
            ("haircut tomorrow at 5pm", day("2026-12-01"), at(17, 0)),
            ("friday 17:00", day("2026-12-04"), at(17, 0)),
            ("mañana a las 5", day("2026-12-01"), at(17, 0)),
            ("sexta às 17h", day("2026-12-04"), at(17, 0)),
            ("hola, quiero una cita mañana", day("2026-12-01"), None),
            ("pasado mañana 10:30", day("2026-12-02"), at(10, 30)),
            ("depois de amanhã às 9h30", day("2026-12-02"), at(9, 30)),
            ("today at 12", day("2026-11-30"), at(12, 0)),
            ("12/3 at 11am", day("2027-03-12"), at(11, 0)),
            ("3 de diciembre 18.30", day("2026-12-03"), at(18, 30)),
            ("dec 24", day("2026-12-24"), None),
            ("monday", day("2026-11-30"), None),
            ("sábado por la mañana", day("2026-12-05"), None),
            ("at 9", None, at(9, 0)),
            ("5 pm please", None, at(17, 0)),
        ];
        for (text, date, time) in cases {
            assert_eq!(when(text, today()), When { date, time }, "{text}");
        }
    }

    #[test]
    fn numbers_that_are_not_times_are_left_alone() {
        for text in ["2", "I want 2 haircuts", "my number is 600123123", "25"] {
            assert_eq!(when(text, today()).time, None, "{text}");
        }
        assert_eq!(when("2", today()), When::default());
    }

    #[test]
    fn a_service_is_named_with_a_typo_but_not_ambiguously() {
        let names = ["Haircut", "Beard trim", "Colour"];
        assert_eq!(named("hiarcut tomorrow", &names), Some("Haircut"));
        assert_eq!(named("a beard trimm please", &names), Some("Beard trim"));
        assert_eq!(named("color", &names), Some("Colour"));
        assert_eq!(named("hello", &names), None);
        assert_eq!(named("cut", &["Haircut", "Hair cut"]), None);
    }

    #[test]
    fn the_language_of_a_message() {
        assert_eq!(
            language_of("hola, quiero una cita mañana"),
            Some(Language::Es)
        );
        assert_eq!(
            language_of("Olá, quero marcar para sexta"),
            Some(Language::Pt)
        );
        assert_eq!(language_of("hi, can I book tomorrow?"), Some(Language::En));
        assert_eq!(language_of("2"), None);
    }

    const NAMES: [[&str; 7]; 3] = [
        [
            "monday",
            "tuesday",
            "wednesday",
            "thursday",
            "friday",
            "saturday",
            "sunday",
        ],
        [
            "lunes",
            "martes",
            "miércoles",
            "jueves",
            "viernes",
            "sábado",
            "domingo",
        ],
        [
            "segunda", "terça", "quarta", "quinta", "sexta", "sábado", "domingo",
        ],
    ];

    proptest! {
        #[test]
        fn a_weekday_and_a_time_written_any_way_parse_back(
            lang in 0usize..3,
            weekday in 0usize..7,
            hour in 8u32..20,
            quarter in 0u32..4,
            style in 0usize..3,
        ) {
            let minute = quarter * 15;
            let time = match (style, lang) {
                (0, _) => format!("{hour:02}:{minute:02}"),
                (1, 0) => {
                    let h12 = if hour > 12 { hour - 12 } else { hour };
                    let ampm = if hour >= 12 { "pm" } else { "am" };
                    if minute == 0 { format!("{h12}{ampm}") } else { format!("{h12}:{minute:02}{ampm}") }
                }
                (1, _) => if minute == 0 { format!("{hour}h") } else { format!("{hour}h{minute:02}") },
                _ => format!("at {hour}.{minute:02}"),
            };
            let text = format!("{} {time}", NAMES[lang][weekday]);
            let parsed = when(&text, today());
            let expected_day = today() + Duration::days(weekday as i64);
            prop_assert_eq!(parsed.date, Some(expected_day), "{}", text);
            prop_assert_eq!(parsed.time, NaiveTime::from_hms_opt(hour, minute, 0), "{}", text);
        }

        #[test]
        fn anything_typed_is_read_without_panicking_and_days_are_never_in_the_past(text in "\\PC{0,60}") {
            let parsed = when(&text, today());
            if let Some(date) = parsed.date {
                prop_assert!(date >= today());
            }
            let _ = named(&text, &["Haircut", "Beard trim"]);
            let _ = language_of(&text);
        }
    }
}
