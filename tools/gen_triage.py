#!/usr/bin/env python3
"""gen_triage.py: writes the labelled support-e-mail set of the
support-triage example (examples/support-triage/models/triage.*.jsonl).

Deterministic (a fixed seed, the standard library only), so the files and
their split are reproducible:

    python3 tools/gen_triage.py [OUT_DIR]   # default examples/support-triage/models

Each e-mail is "Subject: ...\\n\\n" + a body assembled from fragments:
a greeting, an opening, one or two core sentences of its label, sometimes
a sentence that belongs to another label (real mail mixes topics), details
(order numbers, amounts, dates, products), a closing and a signature. Then
noise: typos, lower-case or shouting subjects, missing punctuation. About
4% of the labels are the ones a second reader might have picked (an
ambiguous e-mail labelled by its secondary topic), so the set is not
trivially separable. The test set never repeats a training text.
"""
import json
import os
import random
import sys

LABELS = ["account", "billing", "bug", "feature_request", "shipping"]
N_PER_LABEL = 124  # 620 e-mails, 496 train / 124 test
TEST_FRACTION = 0.2
SEED = 20261123

PRODUCTS = ["the Pro plan", "the mobile app", "the dashboard", "the Team plan", "the desktop client",
            "the API", "the starter kit", "the wireless charger", "the standing desk", "the espresso grinder",
            "the backpack", "the smart thermostat", "the USB-C hub", "the monitor arm", "the notebook set"]
FEATURES = ["dark mode", "export to CSV", "a bulk edit option", "two-factor login with hardware keys",
            "an API endpoint for invoices", "recurring reminders", "keyboard shortcuts", "a Slack integration",
            "custom fields on tickets", "a calendar view", "offline mode", "more granular user roles",
            "scheduled reports", "a German translation", "webhooks for status changes", "saved filters",
            "an undo button", "SSO with Okta", "a way to archive old projects", "bigger attachment limits"]
CARRIERS = ["UPS", "DHL", "FedEx", "the postal service", "USPS", "Royal Mail", "the courier"]
NAMES = ["Anna", "Ben", "Carla", "Dev", "Elif", "Frank", "Grace", "Hiro", "Ines", "Jonas", "Kemal", "Lena",
         "Marco", "Nora", "Omar", "Priya", "Quinn", "Rosa", "Sam", "Tomás", "Uma", "Victor", "Wen", "Yusuf"]
COMPANIES = ["Acme GmbH", "Brightside Ltd", "Northwind", "Blue Harbor Co", "Kettle & Crumb", "Orbit Labs", ""]

GREETINGS = ["Hi,", "Hello,", "Hi there,", "Dear support team,", "Hey,", "Good morning,", "To whom it may concern,",
             "Hello support,", "", "", "Hi team,", "Dear Sir or Madam,"]
CLOSINGS = ["Thanks,", "Thank you,", "Best regards,", "Regards,", "Cheers,", "Thanks in advance,", "Kind regards,",
            "", "Thx", "Many thanks,"]
FILLERS = ["I have been a customer for {years} years and never had this before.",
           "This is the second time I am writing about this.",
           "Please get back to me as soon as possible.",
           "I hope you can help.",
           "Not urgent, just wanted to let you know.",
           "I tried the help center but could not find an answer.",
           "My colleague has the same question.",
           "Sorry if this is the wrong place to ask.",
           "Let me know if you need anything else from me.",
           "We are a small team so this matters a lot to us.",
           "I am honestly quite frustrated at this point.",
           "Appreciate the quick replies so far."]

SUBJECTS = {
    "billing": ["Charged twice", "Question about my invoice", "Refund request", "Wrong amount on invoice {inv}",
                "Billing issue", "Payment failed", "Why was I charged {amount}?", "VAT on my invoice",
                "Cancel and refund", "Invoice {inv}", "Unexpected charge", "Update payment method",
                "Pro-rated charge?", "Receipt needed for expenses", "Double payment", "Discount not applied"],
    "bug": ["App crashes", "Error when saving", "Something is broken", "Bug report", "Page won't load",
            "500 error", "Export is broken", "Sync not working", "Crash on startup", "Buttons do nothing",
            "Data disappeared", "Weird behaviour in {product}", "Notifications broken", "Search returns nothing",
            "Upload stuck at 99%", "Timezone bug"],
    "account": ["Can't log in", "Password reset not working", "Locked out", "Change my email address",
                "Delete my account", "Add a user to our account", "Two-factor problem", "Account access",
                "Transfer ownership", "Username change", "Verify my account", "Login issue",
                "Account suspended?", "Merge two accounts", "Remove old admin", "SSO login fails"],
    "feature_request": ["Feature request", "Suggestion", "Idea: {feature}", "Would love {feature}",
                        "Any plans for {feature}?", "Request: {feature}", "Product feedback", "Wishlist",
                        "Missing feature", "Can you add {feature}?", "Roadmap question", "Improvement idea",
                        "Please consider {feature}", "Enhancement", "Small suggestion", "Integration request"],
    "shipping": ["Where is my order?", "Package not delivered", "Order {order} not arrived", "Tracking not updating",
                 "Wrong item received", "Damaged package", "Delivery delayed", "Change shipping address",
                 "Shipping question", "Order {order}", "Parcel lost", "Missing items in my order",
                 "Return label", "When will it ship?", "Delivery to wrong address", "Customs fees"],
}

CORE = {
    "billing": [
        "I was charged twice for my subscription this month, {amount} each time.",
        "My card was billed {amount} but my plan should cost less than that.",
        "Could you send me a corrected invoice? The VAT number is missing on invoice {inv}.",
        "I cancelled last week but you still charged me {amount}. I would like a refund.",
        "The payment keeps failing even though my card is valid and has funds.",
        "Invoice {inv} shows the wrong company name, we need it fixed for our accounting.",
        "I upgraded to {product} mid-month and don't understand the pro-rated amount on my bill.",
        "Please refund the annual charge of {amount}, I meant to pick monthly billing.",
        "How do I change the credit card you charge every month?",
        "The discount code from your newsletter was not applied to my last payment.",
        "We need receipts for the last three months for our expense reports.",
        "There is a charge of {amount} on my statement that I don't recognise.",
        "Can we pay by bank transfer instead of card? Our finance team prefers invoices.",
        "You billed us for 12 seats but we only have 8 users.",
        "My bank says the refund was never issued, it has been {days} days.",
        "Why did the price go up on my renewal without any notice?",
        "I'd like to downgrade so I'm not charged for the premium tier anymore.",
        "the invoice total doesnt match the quote we agreed on",
    ],
    "bug": [
        "When I click save in {product} I get an error and my changes are lost.",
        "The app crashes every time I open the settings page.",
        "Since the last update, the export button produces an empty file.",
        "I get a 500 error when uploading a file larger than 10 MB.",
        "The dashboard shows yesterday's numbers even after refreshing.",
        "Search returns no results even for items I know exist.",
        "On Android the screen goes blank after login, on iPhone it works fine.",
        "Dates are shown one day off, looks like a timezone problem.",
        "Notifications stopped arriving after I changed my language setting.",
        "The sync between the desktop client and the web app duplicates every entry.",
        "Clicking the Submit button does nothing, the console shows a JavaScript error.",
        "The PDF export cuts off the last column of the table.",
        "Every few minutes I get logged out with a 'session expired' message even while typing.",
        "The page keeps spinning forever and never loads my projects.",
        "Attachments show as corrupted when I download them again.",
        "If you sort by date the list is in the wrong order.",
        "Steps to reproduce: open a project, add a task, reload. The task is gone.",
        "the api returns 502 randomly for about 1 in 20 requests",
    ],
    "account": [
        "I can't log in, it says my password is wrong but I just reset it.",
        "The password reset e-mail never arrives, I checked spam too.",
        "My account got locked after too many attempts, please unlock it.",
        "I need to change the e-mail address on my account to my new work address.",
        "Please delete my account and all my data.",
        "How do I add a new team member to our account?",
        "I lost my phone and can't get the two-factor code anymore.",
        "Our previous admin left the company, we need to transfer ownership of the account.",
        "Can I change my username? The current one has a typo.",
        "I never got the verification e-mail so my account is not active.",
        "We have two accounts by mistake, can you merge them into one?",
        "Please remove the old admin user {name} from our workspace.",
        "Single sign-on fails with 'user not provisioned' for new employees.",
        "My account says suspended and I don't know why.",
        "I want to change the owner of the workspace to my colleague {name}.",
        "The login page says my e-mail is not registered but I've used it for years.",
        "i cant get into my account since yesterday",
        "How do I turn off two-factor authentication for a user who left?",
    ],
    "feature_request": [
        "It would be great if you could add {feature}.",
        "Are there any plans to support {feature}? We would use it every day.",
        "I'd love to see {feature} in a future version.",
        "Our team keeps asking for {feature}, is it on the roadmap?",
        "Suggestion: {feature} would save us a lot of time.",
        "Could you consider adding {feature}? Your competitor has it.",
        "A small idea: let us choose the default view when opening the app.",
        "Please add {feature}, it is the one thing missing for us.",
        "We'd pay more for a plan that includes {feature}.",
        "It would help if the reports could be scheduled and e-mailed automatically.",
        "Would it be possible to have {feature} in the mobile app too?",
        "My wishlist: {feature} and better filters.",
        "Is there a way to vote for {feature}? I'd like to add my vote.",
        "just an idea but {feature} would be really nice",
        "Not a bug, but the workflow would be smoother with {feature}.",
        "Any chance of an integration with our CRM? That would be a big win.",
        "Having {feature} would let us drop another tool we pay for.",
        "I think many users would like {feature}.",
    ],
    "shipping": [
        "My order {order} was supposed to arrive on {date} but it still hasn't come.",
        "The tracking number from {carrier} has not updated for {days} days.",
        "I received the wrong item, I ordered {product} but got something else.",
        "The package arrived damaged, the box was crushed and {product} is broken.",
        "Can I change the delivery address for order {order}? I'm moving next week.",
        "{carrier} says the parcel was delivered but nothing is at my door.",
        "Two items from my order are missing, only one box arrived.",
        "When will order {order} ship? It has said 'processing' for a week.",
        "I need a return label for {product}.",
        "I was asked to pay customs fees on delivery, I thought shipping was included.",
        "The delivery was sent to my old address even though I updated it.",
        "Do you ship to Norway? The checkout doesn't list it.",
        "My parcel is stuck in customs, what should I do?",
        "The courier tried to deliver while I was out and now the package is going back.",
        "Can you split the shipment so the in-stock items come first?",
        "where is my package?? order {order}",
        "It's been {days} days and {carrier} still shows 'label created'.",
        "Can I upgrade to express shipping for an order I placed yesterday?",
    ],
}

# Sentences that mention another topic on the side: mixed into e-mails of
# another label, so words alone do not decide the label.
ASIDE = {
    "billing": ["Also, I'm not sure why my last invoice was higher than usual.",
                "By the way, will I be charged for this month?",
                "I'd also like a receipt for my payment."],
    "bug": ["Also the page was a bit slow and showed an error once.",
            "Side note: the app crashed once while I was checking this.",
            "I tried the website but it gave me an error."],
    "account": ["I also had trouble logging in earlier.",
                "By the way, my colleague can't access our account either.",
                "Also, how do I change my password?"],
    "feature_request": ["Also, it would be nice to get e-mail updates automatically.",
                        "Unrelated, but dark mode would be lovely.",
                        "PS: an export to CSV would be handy."],
    "shipping": ["My last order also took ages to arrive.",
                 "By the way, the package tracking link doesn't work for me.",
                 "I'm also still waiting for a delivery from last month."],
}

# Core sentences that really sit between two labels (the first is the label
# given, the second the one a reader might pick).
BETWEEN = [
    ("billing", "shipping", "I paid {amount} for express shipping but the order came late, I want that fee back."),
    ("shipping", "billing", "I returned {product} two weeks ago, has the parcel reached your warehouse yet?"),
    ("account", "billing", "I can't log in to update my credit card, so my payment will fail."),
    ("billing", "account", "I closed my account but you are still billing me {amount} every month."),
    ("bug", "account", "The login button throws an error after the update, nobody on our team can sign in."),
    ("account", "bug", "After resetting my password I get 'invalid token' every time I try to log in."),
    ("feature_request", "bug", "The CSV export only includes the first 100 rows, could it export everything?"),
    ("bug", "feature_request", "The calendar view ignores weekends, is that intended? It really should show them."),
    ("billing", "bug", "The checkout page errored but my card was charged {amount} anyway."),
    ("shipping", "bug", "The order status page says delivered, but the tracking page shows an error."),
    ("feature_request", "billing", "Could you offer quarterly invoices instead of monthly billing?"),
    ("account", "feature_request", "Is there a way to give a user read-only access to our account?"),
]

TYPO_RATE = 0.015


def typo(rng, text):
    chars = list(text)
    out = []
    i = 0
    while i < len(chars):
        c = chars[i]
        if c.isalpha() and rng.random() < TYPO_RATE:
            kind = rng.randrange(3)
            if kind == 0 and i + 1 < len(chars) and chars[i + 1].isalpha():  # swap
                out.append(chars[i + 1])
                out.append(c)
                i += 2
                continue
            if kind == 1:  # drop
                i += 1
                continue
            out.append(c)  # double
            out.append(c)
            i += 1
            continue
        out.append(c)
        i += 1
    return "".join(out)


def slots(rng):
    return {
        "amount": rng.choice(["$", "€", "£", "USD ", "EUR "]) + str(rng.choice([9, 12, 19, 29, 49, 99, 149, 240, 1200]))
        + rng.choice(["", ".00", ".99", ".50"]),
        "inv": rng.choice(["INV-2026-", "#", "INV", "no. "]) + str(rng.randrange(100, 99999)).zfill(4),
        "order": rng.choice(["#", "", "no. ", "ORD-"]) + str(rng.randrange(10000, 999999)),
        "product": rng.choice(PRODUCTS),
        "feature": rng.choice(FEATURES),
        "carrier": rng.choice(CARRIERS),
        "days": str(rng.randrange(2, 21)),
        "years": str(rng.randrange(1, 9)),
        "date": rng.choice(["Monday", "Friday", "the 12th", "Nov 3", "3 November", "2026-11-03", "last week"]),
        "name": rng.choice(NAMES),
    }


def fill(rng, s, sl):
    return s.format(**sl)


def email(rng, label):
    sl = slots(rng)
    true_label = label
    r = rng.random()
    cores = []
    flipped = False
    if r < 0.12:
        a, b, s = rng.choice([x for x in BETWEEN if x[0] == label] or [("", "", "")])
        if s:
            cores.append(s)
            # now and then the second reader's label is the recorded one
            if rng.random() < 0.35:
                true_label = b
                flipped = True
    if not flipped and (not cores or rng.random() < 0.5):
        cores.append(rng.choice(CORE[label]))
    if not flipped and rng.random() < 0.3:
        extra = rng.choice(CORE[label])
        if extra not in cores:
            cores.append(extra)
    if rng.random() < 0.22:
        other = rng.choice([x for x in LABELS if x != label])
        cores.insert(rng.randrange(len(cores) + 1), rng.choice(ASIDE[other]))
    subj_label = label if rng.random() > 0.1 else rng.choice(LABELS)  # vague or misleading subjects
    subject = fill(rng, rng.choice(SUBJECTS[subj_label]), sl)
    if rng.random() < 0.1:
        subject = subject.upper()
    elif rng.random() < 0.15:
        subject = subject.lower()
    if rng.random() < 0.15:
        subject = "Re: " + subject
    parts = []
    g = rng.choice(GREETINGS)
    if g:
        parts.append(g)
    body = " ".join(fill(rng, c, sl) for c in cores)
    if rng.random() < 0.45:
        body += " " + fill(rng, rng.choice(FILLERS), sl)
    if rng.random() < 0.15:
        body += " " + fill(rng, rng.choice(FILLERS), sl)
    if rng.random() < 0.2:
        body = body.lower()
    if rng.random() < 0.15:
        body = body.replace(".", "").replace(",", "")
    parts.append(typo(rng, body))
    c = rng.choice(CLOSINGS)
    name = rng.choice(NAMES)
    comp = rng.choice(COMPANIES)
    if c:
        parts.append(c + "\n" + name + (("\n" + comp) if comp and rng.random() < 0.5 else ""))
    elif rng.random() < 0.5:
        parts.append(name)
    sep = "\n\n" if rng.random() < 0.7 else "\n"
    return {"text": "Subject: " + subject + "\n\n" + sep.join(parts), "label": true_label}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join("examples", "support-triage", "models")
    rng = random.Random(SEED)
    seen = set()
    by_label = {l: [] for l in LABELS}
    for label in LABELS:
        tries = 0
        while len(by_label[label]) < N_PER_LABEL:
            tries += 1
            assert tries < 100000
            e = email(rng, label)
            if e["text"] in seen:
                continue
            seen.add(e["text"])
            by_label[label].append(e)
    train, test = [], []
    for label in LABELS:
        rows = by_label[label]
        rng.shuffle(rows)
        cut = int(round(len(rows) * TEST_FRACTION))
        test.extend(rows[:cut])
        train.extend(rows[cut:])
    rng.shuffle(train)
    rng.shuffle(test)
    assert not {e["text"] for e in train} & {e["text"] for e in test}
    os.makedirs(out, exist_ok=True)
    for name, rows in (("triage.train.jsonl", train), ("triage.test.jsonl", test)):
        with open(os.path.join(out, name), "w", encoding="utf-8") as f:
            for e in rows:
                f.write(json.dumps(e, ensure_ascii=False) + "\n")
    print(f"{out}: {len(train)} train, {len(test)} test")


if __name__ == "__main__":
    main()
