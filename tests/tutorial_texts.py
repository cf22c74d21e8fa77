"""The tutorial's files and outputs, verbatim, for the tests that replay or parse them.

web-rule.json is also what `rule json` printed (Python 2's json.dumps(indent=2) left a space
after every comma); mysqldb-rule.json was hand-edited, tab included.
"""
from pathlib import Path

SEED = Path(__file__).resolve().parent.parent.parent / "shared" / "seed" / "000_122d7048ab524e8f.txt"

WEB_RULE_JSON = """\
{
  "inbound_rules": [
    {
      "action": "allow", 
      "src_tag": "web"
    }, 
    {
      "action": "allow", 
      "protocol": "tcp", 
      "dst_ports": [
        80, 
        443
      ]
    }
  ], 
  "outbound_rules": [
    {
      "action": "allow"
    }
  ]
}
"""
MYSQLDB_RULE_JSON = """\
{
  "inbound_rules": [
    {
      "action": "allow", 
      "src_tag": "mysqldb"
    }, 
    {
      "action": "allow", 
\t  "src_tag": "db-users",
      "protocol": "tcp", 
      "dst_ports": [
        3306
      ]
    }
  ], 
  "outbound_rules": [
    {
      "action": "allow"
    }
  ]
}
"""
TUTORIAL_SHOW = """\
Inbound rules:
   1 allow from tag web
   2 allow tcp to ports 80,443
Outbound rules:
   1 allow
"""
