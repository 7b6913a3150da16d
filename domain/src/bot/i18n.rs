//! The bot's words in each language it speaks: the default texts a business starts from (and
//! which answer a customer writing in another language, when the business allows it), the
//! fixed labels of buttons and lists, and day and month names for dates. Data, within
//! WhatsApp's limits (button titles up to 20 characters, list rows up to 24).

use chrono::{Datelike as _, NaiveDate};

use super::understand::Language;
use crate::bot_config::Texts;

/// The fixed words of the flow: choice titles and list buttons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Labels {
    pub services: &'static str,
    pub days: &'static str,
    pub times: &'static str,
    pub options: &'static str,
    pub payment: &'static str,
    pub bookings: &'static str,
    pub more_services: &'static str,
    pub more_days: &'static str,
    pub later_times: &'static str,
    pub another_day: &'static str,
    pub confirm: &'static str,
    pub change: &'static str,
    pub another_time: &'static str,
    pub another_service: &'static str,
    pub my_name: &'static str,
    /// "Yes, {service}".
    pub yes_service: &'static str,
    pub something_else: &'static str,
    pub other_services: &'static str,
    pub talk_to_us: &'static str,
    pub pay_at_venue: &'static str,
    pub bank_transfer: &'static str,
    pub pay_online: &'static str,
    /// "from {time}", under a day.
    pub from_time: &'static str,
    pub what_to_change: &'static str,
    pub which_to_cancel: &'static str,
    pub which_to_move: &'static str,
    pub closed: &'static str,
    /// A reminder's buttons.
    pub reschedule: &'static str,
    pub cancel: &'static str,
    /// Who a reminder greets when the booking has no name.
    pub customer: &'static str,
    /// The staff question's list button and its first choice.
    pub staff: &'static str,
    pub anyone: &'static str,
    /// The waitlist's buttons.
    pub join_waitlist: &'static str,
    pub book_it: &'static str,
    pub no_thanks: &'static str,
    /// Monday first.
    pub weekdays: [&'static str; 7],
    pub months: [&'static str; 12],
}

const EN: Labels = Labels {
    services: "Services",
    days: "Days",
    times: "Times",
    options: "Options",
    payment: "Payment",
    bookings: "Bookings",
    more_services: "More services",
    more_days: "More days",
    later_times: "Later times",
    another_day: "Another day",
    confirm: "Confirm",
    change: "Change",
    another_time: "Another time",
    another_service: "Another service",
    my_name: "My name",
    yes_service: "Yes, {service}",
    something_else: "Something else",
    other_services: "Other services",
    talk_to_us: "Talk to us",
    pay_at_venue: "Pay at the venue",
    bank_transfer: "Bank transfer",
    pay_online: "Pay online",
    from_time: "from {time}",
    what_to_change: "What would you like to change?",
    which_to_cancel: "Which booking should I cancel?",
    which_to_move: "Which booking would you like to move?",
    closed: "closed",
    reschedule: "Reschedule",
    cancel: "Cancel",
    customer: "there",
    staff: "People",
    anyone: "Anyone",
    join_waitlist: "Join the waitlist",
    book_it: "Book it",
    no_thanks: "No thanks",
    weekdays: ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"],
    months: [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ],
};

const ES: Labels = Labels {
    services: "Servicios",
    days: "Días",
    times: "Horas",
    options: "Opciones",
    payment: "Pago",
    bookings: "Citas",
    more_services: "Más servicios",
    more_days: "Más días",
    later_times: "Más tarde",
    another_day: "Otro día",
    confirm: "Confirmar",
    change: "Cambiar",
    another_time: "Otra hora",
    another_service: "Otro servicio",
    my_name: "Mi nombre",
    yes_service: "Sí, {service}",
    something_else: "Otra cosa",
    other_services: "Otros servicios",
    talk_to_us: "Hablar con alguien",
    pay_at_venue: "Pagar en el local",
    bank_transfer: "Transferencia",
    pay_online: "Pagar online",
    from_time: "desde las {time}",
    what_to_change: "¿Qué quieres cambiar?",
    which_to_cancel: "¿Qué cita cancelo?",
    which_to_move: "¿Qué cita quieres mover?",
    closed: "cerrado",
    reschedule: "Cambiar hora",
    cancel: "Cancelar",
    customer: "cliente",
    staff: "Personas",
    anyone: "Cualquiera",
    join_waitlist: "Lista de espera",
    book_it: "Reservar",
    no_thanks: "No, gracias",
    weekdays: ["lun", "mar", "mié", "jue", "vie", "sáb", "dom"],
    months: [
        "ene", "feb", "mar", "abr", "may", "jun", "jul", "ago", "sept", "oct", "nov", "dic",
    ],
};

const PT: Labels = Labels {
    services: "Serviços",
    days: "Dias",
    times: "Horários",
    options: "Opções",
    payment: "Pagamento",
    bookings: "Marcações",
    more_services: "Mais serviços",
    more_days: "Mais dias",
    later_times: "Mais tarde",
    another_day: "Outro dia",
    confirm: "Confirmar",
    change: "Alterar",
    another_time: "Outro horário",
    another_service: "Outro serviço",
    my_name: "Meu nome",
    yes_service: "Sim, {service}",
    something_else: "Outra coisa",
    other_services: "Outros serviços",
    talk_to_us: "Falar com alguém",
    pay_at_venue: "Pagar no local",
    bank_transfer: "Transferência",
    pay_online: "Pagar online",
    from_time: "a partir das {time}",
    what_to_change: "O que quer alterar?",
    which_to_cancel: "Qual marcação devo cancelar?",
    which_to_move: "Qual marcação quer mudar?",
    closed: "fechado",
    reschedule: "Remarcar",
    cancel: "Cancelar",
    customer: "cliente",
    staff: "Pessoas",
    anyone: "Qualquer pessoa",
    join_waitlist: "Lista de espera",
    book_it: "Marcar",
    no_thanks: "Não, obrigado",
    weekdays: ["seg", "ter", "qua", "qui", "sex", "sáb", "dom"],
    months: [
        "jan", "fev", "mar", "abr", "mai", "jun", "jul", "ago", "set", "out", "nov", "dez",
    ],
};

pub fn labels(language: Language) -> &'static Labels {
    match language {
        Language::En => &EN,
        Language::Es => &ES,
        Language::Pt => &PT,
    }
}

/// The default texts of `language`, made once.
pub fn default_texts(language: Language) -> &'static Texts {
    static TEXTS: std::sync::LazyLock<[Texts; 3]> =
        std::sync::LazyLock::new(|| Language::ALL.map(Texts::in_language));
    &TEXTS[Language::ALL
        .iter()
        .position(|l| *l == language)
        .expect("every language")]
}

/// The local date label and `HH:MM` time of `at` in the business's language and time zone,
/// for messages the business sends on its own (reminders, waitlist offers).
pub fn local_date_and_time(
    settings: &crate::bot_config::BotSettings,
    at: chrono::DateTime<chrono::Utc>,
) -> (String, String) {
    let local = at.with_timezone(&settings.time_zone.tz());
    (
        date_label(settings.flow.language, local.date_naive()),
        local.format("%H:%M").to_string(),
    )
}

/// "Tue 1 Dec", "mar 1 dic", "ter 1 dez".
pub fn date_label(language: Language, date: NaiveDate) -> String {
    let l = labels(language);
    format!(
        "{} {} {}",
        l.weekdays[date.weekday().num_days_from_monday() as usize],
        date.day(),
        l.months[date.month0() as usize]
    )
}

impl Texts {
    /// The default texts in `language`.
    pub fn in_language(language: Language) -> Texts {
        match language {
            Language::En => Texts::default(),
            Language::Es => Texts {
                greeting: "¡Hola! Bienvenido a {business_name}. Puedo reservarte una cita.".into(),
                choose_service: "¿Qué servicio quieres?".into(),
                choose_day: "¿Qué día te va bien para {service}?".into(),
                choose_time: "Estas horas están libres el {date}:".into(),
                no_times: "Lo siento, no queda nada libre el {date}. Elige otro día, por favor."
                    .into(),
                ask_name: "¿A qué nombre hago la reserva?".into(),
                summary: "{service} el {date} a las {time} por {price}. ¿La reservo?".into(),
                choose_payment: "¿Cómo quieres pagar?".into(),
                confirmed: "¡Reservado! {service} el {date} a las {time}. Tu referencia es \
                    {reference}. {payment}"
                    .into(),
                slot_taken: "Lo siento, las {time} se acaban de ocupar. Estas horas siguen \
                    libres:"
                    .into(),
                closed_now: "Ahora estamos cerrados; abrimos {opens}. Puedes reservar igualmente."
                    .into(),
                not_understood: "Perdona, no te he entendido. Elige una de las opciones.".into(),
                cancelled: "Tu cita {reference} del {date} a las {time} está cancelada.".into(),
                nothing_to_cancel: "No tienes ninguna cita próxima.".into(),
                handoff: "He pedido a alguien del equipo que te responda por aquí.".into(),
                unsupported_message: "De momento solo leo texto. Escribe tu respuesta, por favor."
                    .into(),
                rescheduled: "Hecho: tu cita {reference} es ahora el {date} a las {time}.".into(),
                my_bookings: "Tus próximas citas:".into(),
                hours: "Nuestro horario:\n{hours}".into(),
                prices: "Nuestros servicios:".into(),
                pay_cash: "Paga en el local, por favor.".into(),
                pay_transfer: "Transfiere {price} a: {details}".into(),
                pay_link: "Paga {price} aquí: {url}".into(),
                bookings_paused: "Las reservas online están en pausa, lo siento. Contacta con \
                    {business_name} en {contact} y te buscarán una hora. Aquí puedes seguir \
                    viendo, moviendo o cancelando tus citas."
                    .into(),
                unavailable: "Lo siento, {business_name} no puede aceptar reservas por aquí \
                    ahora. Contacta con ellos en {contact}."
                    .into(),
                welcome_back: "¡Hola, {name}! Bienvenido de nuevo a {business_name}.".into(),
                book_again: "¿Quieres reservar {service} otra vez?".into(),
                booking_name: "Nombre: {name}".into(),
                held: "Te guardo esta hora durante {minutes} minutos.".into(),
                fully_booked: "Lo siento, {service} está completo los próximos {days} días. \
                    Contacta con {business_name} en {contact}, o elige otra cosa."
                    .into(),
                first_free_day: "{service} está completo los próximos {days} días. El primer \
                    día libre es el {date}."
                    .into(),
                answer_shortly: "¡Gracias! Respondo a tu último mensaje en un momento.".into(),
                slot_taken_kept: "Lo siento, las {wanted} se acaban de ocupar; te guardo las \
                    {time}."
                    .into(),
                nearest_times: "Las {time} no están libres el {date}. Las horas libres más \
                    cercanas:"
                    .into(),
                reminder: "Hola {name}, te recordamos tu cita de {service} el {date} a las \
                    {time}. ¿Vendrás?"
                    .into(),
                attendance_confirmed: "¡Gracias! Te esperamos el {date} a las {time}.".into(),
                choose_staff: "¿Con quién quieres tu {service}?".into(),
                with_staff: "Con {staff}.".into(),
                waitlisted: "Estás en la lista de espera de {service}. Te escribiré por aquí en \
                    cuanto quede una hora libre."
                    .into(),
                waitlist_offer: "Buenas noticias: acaba de quedar libre {service} el {date} a \
                    las {time}. ¿Te la reservo?"
                    .into(),
                waitlist_left: "De acuerdo, ya no estás en la lista de espera.".into(),
                erasure_requested: "He pasado tu petición de borrar tus datos a \
                    {business_name}. Te responderán por aquí."
                    .into(),
                erasing: "{business_name} está borrando todo lo que guarda sobre ti: tus \
                    mensajes, tu nombre y tu número. Este es nuestro último mensaje, salvo que \
                    vuelvas a escribir."
                    .into(),
            },
            Language::Pt => Texts {
                greeting: "Olá! Bem-vindo a {business_name}. Posso marcar um horário para si."
                    .into(),
                choose_service: "Que serviço deseja?".into(),
                choose_day: "Que dia lhe dá jeito para {service}?".into(),
                choose_time: "Estes horários estão livres em {date}:".into(),
                no_times: "Desculpe, não há nada livre em {date}. Escolha outro dia, por favor."
                    .into(),
                ask_name: "Em que nome faço a marcação?".into(),
                summary: "{service} em {date} às {time} por {price}. Confirmo?".into(),
                choose_payment: "Como prefere pagar?".into(),
                confirmed: "Marcado! {service} em {date} às {time}. A sua referência é \
                    {reference}. {payment}"
                    .into(),
                slot_taken: "Desculpe, as {time} acabaram de ser ocupadas. Estes horários \
                    continuam livres:"
                    .into(),
                closed_now: "Estamos fechados agora; abrimos {opens}. Pode marcar na mesma.".into(),
                not_understood: "Desculpe, não percebi. Escolha uma das opções.".into(),
                cancelled: "A sua marcação {reference} de {date} às {time} foi cancelada.".into(),
                nothing_to_cancel: "Não tem nenhuma marcação próxima.".into(),
                handoff: "Pedi a alguém da equipa que lhe responda aqui.".into(),
                unsupported_message: "Por agora só leio texto. Escreva a sua resposta, por favor."
                    .into(),
                rescheduled: "Feito: a sua marcação {reference} passou para {date} às {time}."
                    .into(),
                my_bookings: "As suas próximas marcações:".into(),
                hours: "O nosso horário:\n{hours}".into(),
                prices: "Os nossos serviços:".into(),
                pay_cash: "Pague no local, por favor.".into(),
                pay_transfer: "Transfira {price} para: {details}".into(),
                pay_link: "Pague {price} aqui: {url}".into(),
                bookings_paused: "As marcações online estão em pausa, desculpe. Contacte \
                    {business_name} em {contact} e encontrarão um horário. Aqui pode continuar \
                    a ver, mudar ou cancelar as suas marcações."
                    .into(),
                unavailable: "Desculpe, {business_name} não pode aceitar marcações aqui de \
                    momento. Contacte-os em {contact}."
                    .into(),
                welcome_back: "Olá, {name}! Bem-vindo de volta a {business_name}.".into(),
                book_again: "Quer marcar {service} outra vez?".into(),
                booking_name: "Nome: {name}".into(),
                held: "Guardo este horário para si durante {minutes} minutos.".into(),
                fully_booked: "Desculpe, {service} está esgotado nos próximos {days} dias. \
                    Contacte {business_name} em {contact}, ou escolha outra coisa."
                    .into(),
                first_free_day: "{service} está esgotado nos próximos {days} dias. O primeiro \
                    dia livre é {date}."
                    .into(),
                answer_shortly: "Obrigado! Respondo à sua última mensagem num instante.".into(),
                slot_taken_kept: "Desculpe, as {wanted} acabaram de ser ocupadas; guardo as \
                    {time} para si."
                    .into(),
                nearest_times: "As {time} não estão livres em {date}. Os horários livres mais \
                    próximos:"
                    .into(),
                reminder: "Olá {name}, lembramos a sua marcação de {service} em {date} às \
                    {time}. Vem?"
                    .into(),
                attendance_confirmed: "Obrigado! Esperamos por si em {date} às {time}.".into(),
                choose_staff: "Com quem prefere o seu {service}?".into(),
                with_staff: "Com {staff}.".into(),
                waitlisted: "Está na lista de espera de {service}. Escrevo-lhe aqui assim que \
                    houver um horário livre."
                    .into(),
                waitlist_offer: "Boas notícias: acabou de ficar livre {service} em {date} às \
                    {time}. Quer que o marque?"
                    .into(),
                waitlist_left: "Muito bem, saiu da lista de espera.".into(),
                erasure_requested: "Passei o seu pedido para apagar os seus dados a \
                    {business_name}. Vão responder-lhe aqui."
                    .into(),
                erasing: "{business_name} está a apagar tudo o que guarda sobre si: as suas \
                    mensagens, o seu nome e o seu número. Esta é a nossa última mensagem, a \
                    menos que volte a escrever."
                    .into(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bot::message::{MAX_BUTTON_TITLE, MAX_ROW_TITLE};

    #[test]
    fn every_language_has_every_text_and_label_within_whatsapps_limits() {
        for language in Language::ALL {
            let texts = serde_json::to_value(Texts::in_language(language)).unwrap();
            for (name, text) in texts.as_object().unwrap() {
                let text = text.as_str().unwrap();
                assert!(
                    !text.trim().is_empty() && text.chars().count() <= 1024,
                    "{language:?} {name}"
                );
            }
            let mut settings = crate::bot_config::tests::settings();
            settings.flow.texts = Texts::in_language(language);
            assert_eq!(settings.problems(), vec![], "{language:?}");
            let l = labels(language);
            for title in [
                l.more_services,
                l.more_days,
                l.later_times,
                l.another_day,
                l.confirm,
                l.change,
                l.another_time,
                l.another_service,
                l.my_name,
                l.something_else,
                l.other_services,
                l.talk_to_us,
                l.pay_at_venue,
                l.bank_transfer,
                l.pay_online,
                l.services,
                l.days,
                l.times,
                l.options,
                l.payment,
                l.bookings,
            ] {
                assert!(
                    title.chars().count() <= MAX_BUTTON_TITLE,
                    "{language:?} {title}"
                );
                assert!(title.chars().count() <= MAX_ROW_TITLE);
            }
        }
    }

    #[test]
    fn dates_read_as_each_language_writes_them() {
        let day: NaiveDate = "2026-12-01".parse().unwrap();
        assert_eq!(date_label(Language::En, day), "Tue 1 Dec");
        assert_eq!(date_label(Language::Es, day), "mar 1 dic");
        assert_eq!(date_label(Language::Pt, day), "ter 1 dez");
    }
}
