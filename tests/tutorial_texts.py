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


# The tutorial's `>`-quoted files (markdown undone, blank lines dropped), by the line that
# introduces each; tests/unit/test_provision_hosts.py checks they are still the seed's.
TUTORIAL_FILES = {
    'vim /etc/systemd/system/docker.service.d/override.conf': [
        '[Service]',
        'ExecStart=',
        'ExecStart=/usr/bin/dockerd -H unix:///var/run/docker.sock --cluster-store=etcd://192.168.20.1:2379',
    ],
    'vim /usr/lib/systemd/system/docker.socket': [
        '[Unit]',
        'Description=Docker Socket for the API',
        'PartOf=docker.service',
        '[Socket]',
        'ListenStream=/var/run/docker.sock',
        'SocketMode=0660',
        'SocketUser=root',
        'SocketGroup=docker',
        '[Install]',
        'WantedBy=sockets.target',
    ],
    '创建服务文件`/usr/lib/systemd/system/calico-node.service`': [
        '[Unit]',
        'Description=calico-node',
        'Requires=docker.service',
        'After=docker.service',
        '[Service]',
        'Restart=always',
        'ExecStart=/usr/bin/docker start -a calico-node',
        'ExecStop=/usr/bin/docker stop -t 2 calico-node',
        '[Install]',
        'WantedBy=multi-user.target',
    ],
    '创建服务文件`/usr/lib/systemd/system/calico-libnetwork.service`': [
        '[Unit]',
        'Description=calico-libnetwork',
        'Requires=docker.service calico-node.service',
        'After=docker.service calico-node.service',
        '[Service]',
        'Restart=always',
        'ExecStart=/usr/bin/docker start -a calico-libnetwork',
        'ExecStop=/usr/bin/docker stop -t 2 calico-libnetwork',
        '[Install]',
        'WantedBy=multi-user.target',
    ],
    'vim /etc/etcd/etcd.conf': [
        'ETCD_LISTEN_CLIENT_URLS="http://192.168.20.1:2379"',
        'ETCD_ADVERTISE_CLIENT_URLS="http://192.168.20.1:2379"',
    ],
    'vim .bashrc': [
        'export ETCD_AUTHORITY=192.168.20.1:2379',
    ],
}

# the test image's Dockerfile, after "Dockerfile 如下"
TUTORIAL_DOCKERFILE = 'FROM centos\nENV LANG en_US.UTF-8\n\nRUN yum install -y nc telnet\n'
