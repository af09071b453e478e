"""Writes the ticket-routing training data: train.jsonl (chat examples) and test.jsonl (held out).

    python data/tickets/generate.py          (deterministic: the same files every time)

Each ticket is put together from many independent choices, so that wording, length, tone,
typos, politeness in several languages and mixtures of topics vary: an opener, the problem
(one of many phrasings per category), how much it hurts (which sets the priority), an
optional second, minor topic, and a closing. Labels follow the policy:

- category: billing = payments, charges, invoices, refunds, prices, the cost of plans;
  technical = bugs, errors, crashes, outages, slowness, integrations; account = login,
  password, profile, users and seats, ownership, deletion; everything else is other.
- priority: high when work is blocked, money is being lost, or it is urgent; medium when a
  timely answer is asked or the impact is moderate; low otherwise.
- escalate: true exactly when priority is high.

test.jsonl is drawn from its own problem phrasings, never seen in training, and
data/tickets/eval.jsonl holds 40 tickets written by hand.

After the 800 plain examples, train.jsonl holds 200 more tickets asked as a tool call, the way
Instructor, pydantic-ai, LangChain and the openai SDK ask: one function whose parameters are
the ticket, required or named, and the answer a call to it. Their function names, descriptions
and schema styles vary as those clients' do (a registered schema, a pydantic model's), so the
adapter learns to call the function it is offered, not one name. They are drawn from their own
random stream, after everything else: the plain examples and test.jsonl stay as they were.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 20261202

PROBLEMS: dict[str, list[str]] = {
    "billing": [
        "I was charged twice for my subscription this month",
        "there is a duplicate payment on my credit card statement",
        "my invoice shows the wrong amount",
        "I need a refund for the annual plan I cancelled",
        "you billed me after I cancelled my trial",
        "the price of the Pro plan went up without notice",
        "how much does it cost to add five more seats",
        "the invoice has the wrong company address and VAT number",
        "my payment keeps failing even though the card is valid",
        "I was charged in dollars instead of euros",
        "can I get a receipt for the last three payments",
        "the discount code was not applied to my order",
        "we are paying for 30 seats but only use 12",
        "I want to switch from monthly to yearly billing",
        "there is a charge from you that I do not recognise",
        "the refund you promised two weeks ago never arrived",
        "do you offer discounts for non-profits",
        "my bank says the direct debit was taken twice",
        "the tax on my bill looks wrong",
        "please explain the extra fee on this month's invoice",
        "my credit card expired, how do I update payment details",
        "the checkout page shows a different price than the pricing page",
    ],
    "technical": [
        "the app crashes every time I open the settings page",
        "I get an error 500 when I upload a file",
        "the dashboard takes over a minute to load",
        "the API returns timeouts on most requests",
        "sync with Google Calendar stopped working",
        "the export to CSV produces an empty file",
        "notifications are not being sent anymore",
        "the mobile app freezes on the login screen after the update",
        "search does not find documents I uploaded today",
        "the Slack integration posts every message twice",
        "images are not displayed in the editor",
        "the website is down for us, it shows a blank page",
        "reports show wrong numbers since yesterday",
        "the webhook to our server fails with a 401",
        "the desktop client uses all the CPU and becomes unresponsive",
        "two-way sync with Salesforce is losing records",
        "the page keeps reloading in a loop on Safari",
        "PDF generation fails with an unknown error",
        "our scheduled jobs did not run last night",
        "the chat widget does not load on our site",
        "file uploads larger than 10 MB never finish",
        "the app shows a 'something went wrong' banner all the time",
    ],
    "account": [
        "I cannot log in, it says my password is wrong",
        "the password reset email never arrives",
        "please delete my account and all my data",
        "I want to change the email address on my profile",
        "how do I add a new user to our team",
        "I need to remove a former employee's access",
        "please transfer ownership of the workspace to my colleague",
        "two-factor authentication codes are rejected",
        "my account got locked after too many attempts",
        "how can I change my username",
        "someone else seems to have logged into my account",
        "I want to merge my two accounts",
        "we need three more seats for new hires",
        "I cannot find where to update my profile picture",
        "single sign-on stopped accepting our employees",
        "I'd like to downgrade a user from admin to member",
        "our admin left and nobody can manage the account",
        "the invitation link for my teammate has expired",
        "how do I change the owner of this account",
        "I want to close my account",
    ],
    "other": [
        "do you have an office in Lisbon",
        "I just want to say thank you for the great service",
        "are you hiring designers right now",
        "can I visit your team at the conference next month",
        "do you have a partner programme for agencies",
        "I have an idea for a new feature",
        "where can I find your press kit",
        "is there a user community or forum",
        "what are your opening hours for phone support",
        "could someone speak at our meetup",
        "I'm a student writing a thesis about your industry",
        "do you plan to support more languages",
        "your newsletter goes to my spam folder, just so you know",
        "what is your company's sustainability policy",
    ],
}

# More phrasings, in the words customers use.
PROBLEMS["billing"] += ['my subscription renewed even though I turned auto-renew off', 'I see three charges of 19.99 on my bank statement', 'the quote you sent does not match what we were invoiced', 'we need an invoice with our purchase order number on it', 'why was I charged a late fee', 'I upgraded by mistake and want my money back', 'the payment page rejects our company credit card', 'please send the invoices to our finance department instead of me', 'how much would the enterprise plan cost for 200 users', 'your pricing page says 10 euros but I paid 12', 'we were billed for a month we did not use', 'can we pay by bank transfer instead of card']
PROBLEMS["technical"] += ['the login page shows a spinner forever', "I get 'connection reset' errors when syncing large projects", 'the Android app crashes right after the splash screen', 'dates in the export are shifted by one day', 'our API key suddenly returns 403 forbidden', 'the editor loses my changes when I switch tabs', 'emails from your system end up with broken links', 'the integration with Microsoft Teams does not post anything', 'charts on the dashboard are empty since this morning', 'uploading a CSV gives a parsing error on every file', 'the app is really slow when more than ten people use it', 'the mobile app drains the battery in an hour']
PROBLEMS["account"] += ["I can't sign in with Google anymore", 'my colleague never received the invite to join our workspace', 'how do I make someone else the billing contact on the account', "I'm locked out because I lost my authenticator app", 'please remove the old admin from our organisation', 'I changed jobs and need to move my account to my new email', 'can I have two workspaces under one login', 'the system says my email is already registered but I never signed up', 'please reset the password for our shared support account', 'we need to reduce our team from 20 seats to 15 users', 'I want to download all my data before deleting my account', 'how do I turn on two-factor authentication']
PROBLEMS["other"] += ['do you have a reseller programme in Canada', "I'd like to give feedback about your onboarding video", 'is your company attending the trade fair in Paris', 'who should I contact about a partnership', 'can you send me stickers for our office', 'I found a typo on your homepage', "what's the story behind your company name", 'are your servers powered by renewable energy']

# Held out: phrasings that only the test split uses.
TEST_PROBLEMS: dict[str, list[str]] = {
    "billing": ["the yearly renewal charged my old card and then my new one too",
                "why is my bill higher than the plan price",
                "I paid the invoice but it still shows as unpaid"],
    "technical": ["the calendar view shows every event on the wrong day",
                  "our integration with Zapier returns an authentication error",
                  "the app is extremely slow since the last release"],
    "account": ["I can't reset my password because I no longer have the old phone",
                "please give my colleague admin rights",
                "how do I remove my credit card and delete the account"],
    "other": ["do you sponsor open-source projects",
              "can I get a tour of your office"],
}

IMPACT: dict[str, list[str]] = {
    "high": [
        "Our whole team is blocked and cannot work.",
        "This is urgent, we are losing money every hour.",
        "URGENT - production is affected right now.",
        "Nobody here can do their job until this is fixed!!",
        "We are losing sales because of this, please hurry.",
        "This is critical for us, please treat it as an emergency.",
        "It's blocking our launch today.",
        "Customers are complaining and we cannot serve them.",
        "We can't take any orders until this works.",
        "Please escalate, this is an emergency.",
        "Everyone in the office is stuck.",
        "This is costing us thousands of dollars.",
        "asap please!!!",
        "Es ist dringend, wir können nicht arbeiten.",
    ],
    "medium": [
        "Could you look into it this week?",
        "It's annoying but we can work around it for now.",
        "A reply in the next day or two would be great.",
        "We'd appreciate a timely answer.",
        "It affects a few of our users.",
        "Please get back to me soon.",
        "Our accountant needs this before the end of the month.",
        "We need this sorted out by Friday.",
        "It slows our team down a bit.",
        "Could you reply within a couple of days?",
        "Some of our customers noticed it too.",
        "Une réponse rapide serait appréciée.",
    ],
    "low": [
        "",
        "No rush.",
        "Whenever you have time.",
        "Just curious.",
        "Not a big deal.",
        "Thanks in advance.",
        "When you get a chance.",
        "Just wondering.",
        "Out of curiosity.",
    ],
}

OPENERS = ["", "Hi,", "Hello,", "Hey team,", "Dear support,", "Good morning,", "Hi there!",
           "Bonjour,", "Hallo,", "Hola,", "Ciao,", "Hello support team,", "To whom it may concern,",
           "Greetings,", "yo,"]
CLOSINGS = ["", "Thanks.", "Thank you!", "Best regards, Anna", "Cheers, Tom", "Merci !",
            "Danke schön.", "Gracias.", "Kind regards,\nPriya", "thx", "Regards, the ops team",
            "Sent from my phone"]
ASIDES = ["By the way, I love the new design.", "Also, is there a mobile app for tablets?",
          "Unrelated: your docs have a typo on the pricing page.",
          "PS: the dark mode looks great.", "We've been customers for five years."]
STYLE = ["plain", "lower", "upper_start", "run_on", "question"]


def _typo(text: str, rng: random.Random) -> str:
    """One or two small slips, as people type."""
    chars = list(text)
    for _ in range(rng.randint(1, 2)):
        if len(chars) < 8:
            break
        i = rng.randrange(1, len(chars) - 1)
        if chars[i].isalpha() and chars[i + 1].isalpha():
            chars[i], chars[i + 1] = chars[i + 1], chars[i]
    return "".join(chars)


def _ticket(rng: random.Random, category: str, problem: str, priority: str) -> str:
    body = problem[0].upper() + problem[1:]
    style = rng.choice(STYLE)
    if style == "lower":
        body = body.lower()
    elif style == "question" and not body.endswith("?"):
        body = f"Can you help? {body}"
    body += "?" if problem.startswith(("how", "can", "do ", "where", "what", "is ", "are ",
                                       "could")) else "."
    parts = [rng.choice(OPENERS), body, rng.choice(IMPACT[priority])]
    if rng.random() < 0.25:
        parts.insert(rng.randint(2, len(parts)), rng.choice(ASIDES))
    parts.append(rng.choice(CLOSINGS))
    text = " ".join(p for p in parts if p)
    if style == "run_on":
        text = text.replace(". ", ", ", 1)
    if rng.random() < 0.3:
        text = _typo(text, rng)
    return text


def _label(category: str, priority: str) -> dict[str, object]:
    return {"category": category, "priority": priority, "escalate": priority == "high"}


def _examples(problems: dict[str, list[str]], count: int, rng: random.Random
              ) -> list[tuple[str, dict[str, object]]]:
    # Priorities as they come in: most tickets are not emergencies.
    priorities = ["low"] * 4 + ["medium"] * 3 + ["high"] * 3
    made = []
    seen: set[str] = set()
    while len(made) < count:
        category = rng.choice(list(problems))
        priority = rng.choice(priorities)
        text = _ticket(rng, category, rng.choice(problems[category]), priority)
        if text not in seen:
            seen.add(text)
            made.append((text, _label(category, priority)))
    return made


TOOL_NAMES = ["route_ticket", "Ticket", "final_result", "classify_ticket", "TicketRouting"]
TOOL_DESCRIPTIONS = [None, "Route a support ticket.", "The final response which ends this "
                     "conversation", "Correctly extracted `Ticket` with all the required "
                     "parameters with correct types", "Where a support ticket goes."]


def _registered_schema() -> dict[str, object]:
    schema: dict[str, object] = json.loads(
        (HERE.parents[1] / "config" / "schemas" / "ticket.json").read_text())
    return schema


def _pydantic_schema(title: str) -> dict[str, object]:
    """The ticket as a pydantic model's JSON schema (what Instructor and LangChain send)."""
    enum = {"category": ["billing", "technical", "account", "other"],
            "priority": ["low", "medium", "high"]}
    properties: dict[str, object] = {
        name: {"enum": values, "title": name.title(), "type": "string"}
        for name, values in enum.items()}
    properties["escalate"] = {"title": "Escalate", "type": "boolean"}
    return {"properties": properties, "required": ["category", "priority", "escalate"],
            "title": title, "type": "object"}


def _tool_example(text: str, label: dict[str, object], index: int,
                  rng: random.Random) -> dict[str, object]:
    name = rng.choice(TOOL_NAMES)
    function: dict[str, object] = {"name": name}
    description = rng.choice(TOOL_DESCRIPTIONS)
    if description is not None:
        function["description"] = description
    function["parameters"] = (_registered_schema() if rng.random() < 0.5
                              else _pydantic_schema(name))
    call = {"id": f"call_{index}", "type": "function",
            "function": {"name": name, "arguments": json.dumps(label)}}
    return {"tools": [{"type": "function", "function": function}],
            "messages": [{"role": "user", "content": text},
                         {"role": "assistant", "content": None, "tool_calls": [call]}]}


def main() -> None:
    rng = random.Random(SEED)
    train = _examples(PROBLEMS, 800, rng)
    test = _examples(TEST_PROBLEMS, 100, rng)
    tool_rng = random.Random(SEED + 1)
    seen = {text for text, _ in train}
    tool = [item for item in _examples(PROBLEMS, 400, tool_rng) if item[0] not in seen][:200]
    with (HERE / "train.jsonl").open("w", encoding="utf-8") as out:
        for text, label in train:
            answer = json.dumps(label)
            out.write(json.dumps({"messages": [{"role": "user", "content": text},
                                               {"role": "assistant", "content": answer}]},
                                 ensure_ascii=False) + "\n")
        for index, (text, label) in enumerate(tool):
            out.write(json.dumps(_tool_example(text, label, index, tool_rng),
                                 ensure_ascii=False) + "\n")
    with (HERE / "test.jsonl").open("w", encoding="utf-8") as out:
        for index, (text, label) in enumerate(test):
            out.write(json.dumps({"id": f"test-{index:03d}", "input": text,
                                  "expected": label}, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
