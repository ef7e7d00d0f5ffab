"""What the self-service pages say, in Danish, Swedish, Norwegian Bokmål and English.

The texts are the notice: a change made on a page is recorded with `NOTICE_VERSION` and the language
shown, so whatever wording the subject saw can be found again. Change any text below and bump it.
"""

from __future__ import annotations

from samtykke.consent.unsubscribe_pages import Language
from samtykke.domain.model import Channel, ConsentStatus

NOTICE_VERSION = "selfservice-2026-12"

UI: dict[Language, dict[str, str]] = {
    Language.DA: {
        "consumer": "Dine samtykker",
        "employee": "Dine kontaktvalg",
        "company": "Mitt Företag: virksomhedens samtykker",
        "intro": "Her ser du, hvad du har sagt ja til, og du kan ændre det med ét klik.",
        "company_intro": "Her bestemmer du for virksomheden, hvordan vi må bruge dens trafikdata.",
        "basis": "Retsgrundlag",
        "on": "Til",
        "off": "Fra",
        "since": "siden",
        "until": "gælder til",
        "never": "Ikke valgt endnu",
        "history": "Din historik",
        "company_history": "Virksomhedens historik",
        "when": "Tidspunkt",
        "what": "Formål",
        "channel": "Kanal",
        "state": "Status",
        "by": "Via",
        "none_yet": "Ingen ændringer endnu.",
        "no_consent": "Det behøver vi ikke dit samtykke til",
        "employees": "Medarbejdernes kontaktvalg",
        "employees_note": "Hver medarbejder vælger selv; du kan se valgene her.",
        "no_employees": "Ingen medarbejdere registreret.",
        "person": "Medarbejder",
        "objection": "Du kan gøre indsigelse når som helst: slå kanalen fra.",
        "saved": "Gemt.",
        "language": "Sprog",
        "expired": "Linket er udløbet. Åbn siden igen fra Mine sider.",
        "invalid": "Linket er ikke gyldigt.",
        "session": "Din session er udløbet. Åbn siden igen fra Mine sider.",
        "stale_form": "Siden var forældet; her er den aktuelle. Prøv igen.",
        "refused": "Ændringen kunne ikke gemmes.",
    },
    Language.SV: {
        "consumer": "Dina samtycken",
        "employee": "Dina kontaktval",
        "company": "Mitt Företag: företagets samtycken",
        "intro": "Här ser du vad du har sagt ja till, och du kan ändra det med ett klick.",
        "company_intro": "Här bestämmer du för företaget hur vi får använda dess trafikdata.",
        "basis": "Rättslig grund",
        "on": "På",
        "off": "Av",
        "since": "sedan",
        "until": "gäller till",
        "never": "Inte valt ännu",
        "history": "Din historik",
        "company_history": "Företagets historik",
        "when": "Tidpunkt",
        "what": "Ändamål",
        "channel": "Kanal",
        "state": "Status",
        "by": "Via",
        "none_yet": "Inga ändringar ännu.",
        "no_consent": "Detta behöver vi inte ditt samtycke till",
        "employees": "De anställdas kontaktval",
        "employees_note": "Varje anställd väljer själv; här ser du valen.",
        "no_employees": "Inga anställda registrerade.",
        "person": "Anställd",
        "objection": "Du kan invända när som helst: stäng av kanalen.",
        "saved": "Sparat.",
        "language": "Språk",
        "expired": "Länken har gått ut. Öppna sidan igen från Mina sidor.",
        "invalid": "Länken är inte giltig.",
        "session": "Din session har gått ut. Öppna sidan igen från Mina sidor.",
        "stale_form": "Sidan var inaktuell; här är den aktuella. Försök igen.",
        "refused": "Ändringen kunde inte sparas.",
    },
    Language.NB: {
        "consumer": "Dine samtykker",
        "employee": "Dine kontaktvalg",
        "company": "Mitt Företag: virksomhetens samtykker",
        "intro": "Her ser du hva du har sagt ja til, og du kan endre det med ett klikk.",
        "company_intro": "Her bestemmer du for virksomheten hvordan vi kan bruke trafikkdataene dens.",
        "basis": "Rettslig grunnlag",
        "on": "På",
        "off": "Av",
        "since": "siden",
        "until": "gjelder til",
        "never": "Ikke valgt ennå",
        "history": "Din historikk",
        "company_history": "Virksomhetens historikk",
        "when": "Tidspunkt",
        "what": "Formål",
        "channel": "Kanal",
        "state": "Status",
        "by": "Via",
        "none_yet": "Ingen endringer ennå.",
        "no_consent": "Dette trenger vi ikke ditt samtykke til",
        "employees": "De ansattes kontaktvalg",
        "employees_note": "Hver ansatt velger selv; her ser du valgene.",
        "no_employees": "Ingen ansatte registrert.",
        "person": "Ansatt",
        "objection": "Du kan protestere når som helst: slå av kanalen.",
        "saved": "Lagret.",
        "language": "Språk",
        "expired": "Lenken er utløpt. Åpne siden igjen fra Min side.",
        "invalid": "Lenken er ikke gyldig.",
        "session": "Økten din er utløpt. Åpne siden igjen fra Min side.",
        "stale_form": "Siden var utdatert; her er den gjeldende. Prøv igjen.",
        "refused": "Endringen kunne ikke lagres.",
    },
    Language.EN: {
        "consumer": "Your consents",
        "employee": "Your contact choices",
        "company": "Mitt Företag: your company's consents",
        "intro": "What you agreed to, and one click to change it.",
        "company_intro": "Decide for the company how we may use its traffic data.",
        "basis": "Legal basis",
        "on": "On",
        "off": "Off",
        "since": "since",
        "until": "valid until",
        "never": "Not chosen yet",
        "history": "Your history",
        "company_history": "The company's history",
        "when": "When",
        "what": "Purpose",
        "channel": "Channel",
        "state": "Status",
        "by": "Through",
        "none_yet": "No changes yet.",
        "no_consent": "We need no consent for these",
        "employees": "Employees' contact choices",
        "employees_note": "Each employee chooses for themselves; you see their choices here.",
        "no_employees": "No employees registered.",
        "person": "Employee",
        "objection": "You may object at any time: switch the channel off.",
        "saved": "Saved.",
        "language": "Language",
        "expired": "This link has expired. Open the page again from My pages.",
        "invalid": "This link is not valid.",
        "session": "Your session has expired. Open the page again from My pages.",
        "stale_form": "The page was out of date; this is the current one. Please try again.",
        "refused": "The change could not be saved.",
    },
}

LANGUAGE_NAMES = {Language.DA: "Dansk", Language.SV: "Svenska", Language.NB: "Norsk", Language.EN: "English"}

# (title, plain-language description) per purpose code
PURPOSES: dict[Language, dict[str, tuple[str, str]]] = {
    Language.DA: {
        "direct_marketing": ("Markedsføring fra os", "Tilbud og nyheder fra os på de kanaler, du slår til."),
        "third_party_marketing": (
            "Markedsføring fra udvalgte partnere",
            "Vi sender tilbud fra udvalgte partnere. Vi giver aldrig dine oplysninger til dem.",
        ),
        "personalised_offers": (
            "Bedre anbefalinger",
            "Vi bruger dine trafikdata til at give dig tilbud, der passer til dit forbrug.",
        ),
        "product_development": ("Produktudvikling", "Vi bruger trafikdata til at udvikle bedre produkter."),
        "customer_service_improvement": (
            "Bedre kundeservice",
            "Vi bruger trafikdata til at hjælpe hurtigere, når du kontakter os.",
        ),
        "fault_prevention": ("Forebyggelse af fejl", "Vi bruger trafikdata til at finde og rette fejl i nettet."),
        "existing_customer_offers": (
            "Tilbud på produkter, du allerede har",
            "Vi må kontakte dig om produkter, du allerede bruger, medmindre du siger fra.",
        ),
        "service_delivery": ("Levering af dit abonnement", "Beskeder om dit abonnement får du stadig."),
        "billing": ("Fakturering", "Vi bruger dine data til at sende regninger."),
        "legal_data_retention": ("Lovpligtig opbevaring", "Loven pålægger os at gemme visse trafikdata."),
    },
    Language.SV: {
        "direct_marketing": ("Marknadsföring från oss", "Erbjudanden och nyheter från oss i de kanaler du slår på."),
        "third_party_marketing": (
            "Marknadsföring från utvalda partner",
            "Vi skickar erbjudanden från utvalda partner. Vi lämnar aldrig ut dina uppgifter till dem.",
        ),
        "personalised_offers": (
            "Bättre rekommendationer",
            "Vi använder trafikdata för att ge erbjudanden som passar hur ni använder tjänsterna.",
        ),
        "product_development": ("Produktutveckling", "Vi använder trafikdata för att utveckla bättre produkter."),
        "customer_service_improvement": (
            "Bättre kundservice",
            "Vi använder trafikdata för att hjälpa er snabbare när ni kontaktar oss.",
        ),
        "fault_prevention": ("Förebyggande av fel", "Vi använder trafikdata för att hitta och åtgärda fel i nätet."),
        "existing_customer_offers": (
            "Erbjudanden om produkter ni redan har",
            "Vi får kontakta er om produkter ni redan använder, om ni inte säger nej.",
        ),
        "service_delivery": ("Leverans av abonnemanget", "Meddelanden om ert abonnemang får ni fortfarande."),
        "billing": ("Fakturering", "Vi använder uppgifterna för att skicka fakturor."),
        "legal_data_retention": ("Lagstadgad lagring", "Lagen kräver att vi sparar viss trafikdata."),
    },
    Language.NB: {
        "direct_marketing": ("Markedsføring fra oss", "Tilbud og nyheter fra oss i kanalene du slår på."),
        "third_party_marketing": (
            "Markedsføring fra utvalgte partnere",
            "Vi sender tilbud fra utvalgte partnere. Vi gir aldri opplysningene dine til dem.",
        ),
        "personalised_offers": (
            "Bedre anbefalinger",
            "Vi bruker trafikkdata til å gi tilbud som passer til bruken din.",
        ),
        "product_development": ("Produktutvikling", "Vi bruker trafikkdata til å utvikle bedre produkter."),
        "customer_service_improvement": (
            "Bedre kundeservice",
            "Vi bruker trafikkdata til å hjelpe raskere når du kontakter oss.",
        ),
        "fault_prevention": ("Forebygging av feil", "Vi bruker trafikkdata til å finne og rette feil i nettet."),
        "existing_customer_offers": (
            "Tilbud om produkter du allerede har",
            "Vi kan kontakte deg om produkter du allerede bruker, med mindre du sier nei.",
        ),
        "service_delivery": ("Levering av abonnementet", "Meldinger om abonnementet ditt får du fortsatt."),
        "billing": ("Fakturering", "Vi bruker opplysningene til å sende regninger."),
        "legal_data_retention": ("Lovpålagt lagring", "Loven pålegger oss å lagre visse trafikkdata."),
    },
    Language.EN: {
        "direct_marketing": ("Marketing from us", "Offers and news from us on the channels you switch on."),
        "third_party_marketing": (
            "Marketing from selected partners",
            "We send offers from selected partners. We never give them your details.",
        ),
        "personalised_offers": (
            "Better recommendations",
            "We use traffic data to make offers that fit how the subscription is used.",
        ),
        "product_development": ("Product development", "We use traffic data to build better products."),
        "customer_service_improvement": (
            "Better customer service",
            "We use traffic data to help faster when you contact us.",
        ),
        "fault_prevention": ("Fault prevention", "We use traffic data to find and fix faults in the network."),
        "existing_customer_offers": (
            "Offers on products you already have",
            "We may contact you about products you already use, unless you say no.",
        ),
        "service_delivery": ("Delivering your subscription", "You still get messages about your subscription."),
        "billing": ("Billing", "We use your details to send bills."),
        "legal_data_retention": ("Retention required by law", "The law makes us keep some traffic data."),
    },
}

BASES: dict[Language, dict[str, str]] = {
    Language.DA: {
        "consent": "dit samtykke",
        "legitimate_interest": "legitim interesse (du kan gøre indsigelse)",
        "contract": "din aftale med os",
        "legal_obligation": "retlig forpligtelse",
    },
    Language.SV: {
        "consent": "ert samtycke",
        "legitimate_interest": "berättigat intresse (ni kan invända)",
        "contract": "avtalet med oss",
        "legal_obligation": "rättslig förpliktelse",
    },
    Language.NB: {
        "consent": "ditt samtykke",
        "legitimate_interest": "berettiget interesse (du kan protestere)",
        "contract": "avtalen med oss",
        "legal_obligation": "rettslig forpliktelse",
    },
    Language.EN: {
        "consent": "your consent",
        "legitimate_interest": "legitimate interest (you may object)",
        "contract": "your contract with us",
        "legal_obligation": "a legal obligation",
    },
}

CHANNELS: dict[Language, dict[Channel, str]] = {
    Language.DA: {
        Channel.SMS: "SMS",
        Channel.EMAIL: "E-mail",
        Channel.PHONE: "Telefon",
        Channel.POST: "Post",
        Channel.PUSH: "Push",
    },
    Language.SV: {
        Channel.SMS: "SMS",
        Channel.EMAIL: "E-post",
        Channel.PHONE: "Telefon",
        Channel.POST: "Post",
        Channel.PUSH: "Push",
    },
    Language.NB: {
        Channel.SMS: "SMS",
        Channel.EMAIL: "E-post",
        Channel.PHONE: "Telefon",
        Channel.POST: "Post",
        Channel.PUSH: "Push",
    },
    Language.EN: {
        Channel.SMS: "SMS",
        Channel.EMAIL: "E-mail",
        Channel.PHONE: "Phone",
        Channel.POST: "Post",
        Channel.PUSH: "Push",
    },
}

STATUSES: dict[Language, dict[ConsentStatus, str]] = {
    Language.DA: {
        ConsentStatus.GRANTED: "Givet",
        ConsentStatus.WITHDRAWN: "Trukket tilbage",
        ConsentStatus.REVOKED: "Tilbagekaldt",
        ConsentStatus.EXPIRED: "Udløbet",
    },
    Language.SV: {
        ConsentStatus.GRANTED: "Givet",
        ConsentStatus.WITHDRAWN: "Återkallat",
        ConsentStatus.REVOKED: "Återkallat av annan",
        ConsentStatus.EXPIRED: "Har gått ut",
    },
    Language.NB: {
        ConsentStatus.GRANTED: "Gitt",
        ConsentStatus.WITHDRAWN: "Trukket tilbake",
        ConsentStatus.REVOKED: "Tilbakekalt",
        ConsentStatus.EXPIRED: "Utløpt",
    },
    Language.EN: {
        ConsentStatus.GRANTED: "Given",
        ConsentStatus.WITHDRAWN: "Withdrawn",
        ConsentStatus.REVOKED: "Revoked",
        ConsentStatus.EXPIRED: "Lapsed",
    },
}


def purpose_text(language: Language, code: str) -> tuple[str, str]:
    return PURPOSES[language].get(code, (code.replace("_", " "), ""))
